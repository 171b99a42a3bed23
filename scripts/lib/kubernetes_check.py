#!/usr/bin/env python3
"""Checks of deploy/kubernetes/ that no schema covers, for scripts/check-kubernetes.sh.

  kubernetes_check.py prometheusrule [--write]
      deploy/kubernetes/base/prometheusrule.yaml is generated from deploy/prometheus/alerts.yml
      (its groups, verbatim, under spec:). Without --write: exit 1 if the file is not what
      would be generated. With --write: regenerate it.

  kubernetes_check.py inspect RENDERED OUTDIR
      RENDERED is the output of `kubectl kustomize`. Writes to OUTDIR:
        core.yaml        the objects of the Kubernetes API (for kubernetes-validate)
        rules.yml        the PrometheusRule's spec (for promtool check rules)
        pod/             a stand-in for one pod of the workload, for run-in-image.sh: a
                         directory per volume of container etagate (the ConfigMap's files as
                         the kubelet lays them out, placeholder Secret files, empty emptyDirs),
                         etagate.args (run-in-image options, one per line: the mounts, the
                         container's env with stand-in values for the downward API, upstream
                         host names), etagate.cmd (the image's command with -t added, one word
                         per line) and etagate.env (the container's env, NAME=VALUE lines)
      and prints one line per check in check-deploy.sh's style ("ok    ...", "FAIL  ...");
      exit 1 if any failed. The checks: the PodMonitor's structure and its agreement with the
      pods; the PrometheusRule's groups against alerts.yml; the workload against the image
      (uid, no command override, the config file in the ConfigMap's volume, mounted whole) and
      against its configuration (every ${NAME} it uses set in the container's env,
      cluster.advertise the pod IP, listener ports, memory for the budgets, time to drain, the
      disk tier's volume); selectors and named ports between the objects.

  kubernetes_check.py pod-env MANIFEST [FIELDPATH=VALUE...]
      The environment container etagate of the Deployment or StatefulSet in MANIFEST (a file
      of objects, e.g. deploy/kubernetes/base/deployment.yaml) would get: the image's ENV, then
      the container's env, one NAME=VALUE a line. The downward API's fields get stand-in
      values (pod name WORKLOAD-0, pod IP 10.244.1.17, ...), or those given, e.g.
      status.podIP=127.0.0.1. Exit 1 if an entry cannot be given a value.
"""

import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile

import yaml

ALERTS = "deploy/prometheus/alerts.yml"
PROMETHEUSRULE = "deploy/kubernetes/base/prometheusrule.yaml"
DOCKERFILE = "deploy/container/Dockerfile"
# Memory beyond the two budgets (and the disk tier's write queue) that the manifests reserve:
# deployment.yaml explains the figure.
OVERHEAD = 128 << 20
DISK_QUEUE = 64 << 20
# Kubernetes API groups that kubernetes-validate has no schemas for, checked here instead.
OPERATOR_GROUP = "monitoring.coreos.com/"
PODMONITOR_SPEC_KEYS = {
    "jobLabel", "podTargetLabels", "podMetricsEndpoints", "selector", "namespaceSelector",
    "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
    "attachMetadata", "scrapeProtocols", "fallbackScrapeProtocol", "keepDroppedTargets",
    "scrapeClassicHistograms", "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor",
    "convertClassicHistogramsToNHCB", "scrapeClass", "selectorMechanism", "bodySizeLimit",
    "scrapeNativeHistograms",
}
ENDPOINT_KEYS = {
    "port", "portNumber", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout",
    "honorLabels", "honorTimestamps", "trackTimestampsStaleness", "metricRelabelings",
    "relabelings", "proxyUrl", "followRedirects", "enableHttp2", "filterRunning",
    "basicAuth", "oauth2", "authorization", "bearerTokenSecret", "tlsConfig",
    "noProxy", "proxyFromEnvironment", "proxyConnectHeader",
}


def generated_prometheusrule():
    text = open(ALERTS).read()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = "\n".join(("  " + line) if line.strip() else "" for line in lines[start:])
    return (
        "# GENERATED from deploy/prometheus/alerts.yml: do not edit. Change alerts.yml, then run\n"
        "#   python3 scripts/lib/kubernetes_check.py prometheusrule --write\n"
        "# (scripts/check-kubernetes.sh fails while the two differ). The Prometheus Operator's form\n"
        "# of the same alert rules; podmonitor.yaml gives the scraped pods the job label they\n"
        "# select on (job=\"etagate\"). A Prometheus that picks rules by label (kube-prometheus-stack:\n"
        "# release=<its release name>) needs that label added here, in an overlay.\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: etagate\n"
        "  labels:\n"
        "    app.kubernetes.io/name: etagate\n"
        "spec:\n" + body + "\n"
    )


def prometheusrule(write):
    want = generated_prometheusrule()
    if write:
        with open(PROMETHEUSRULE, "w") as f:
            f.write(want)
        print(f"wrote {PROMETHEUSRULE} from {ALERTS}")
        return 0
    have = open(PROMETHEUSRULE).read() if os.path.exists(PROMETHEUSRULE) else ""
    if have != want:
        print(f"{PROMETHEUSRULE} is not generated from {ALERTS}: run "
              "python3 scripts/lib/kubernetes_check.py prometheusrule --write")
        return 1
    print(f"{PROMETHEUSRULE} is generated from {ALERTS}")
    return 0


def size(text):
    """A size as etagate writes it (256MiB, 1GB, 512) or a Kubernetes quantity (448Mi, 1G)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?)(B?)\s*", str(text), re.I)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    n, unit, binary, _ = m.groups()
    base = 1024 if binary else 1000
    return int(n) * base ** " KMGT".index(unit.upper() or " ")


def duration(text):
    """An etagate duration (10s, 1m 30s, 500ms), in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*(ms|s|m|h)", str(text))
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def mib(n):
    return f"{n / (1 << 20):g}Mi"


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what, why=""):
        if ok:
            print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}" + (f": {why}" if why else ""))
        return ok


def dockerfile_env():
    """{NAME: VALUE} of the Dockerfile's ENV lines (single NAME=VALUE form)."""
    found = {}
    for line in open(DOCKERFILE):
        m = re.match(r"ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$", line.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


def dockerfile():
    """ENTRYPOINT, CMD (exec form) and USER of the runtime stage."""
    found = {}
    for line in open(DOCKERFILE):
        m = re.match(r"(ENTRYPOINT|CMD|USER)\s+(.*)", line.strip())
        if m:
            found[m.group(1)] = json.loads(m.group(2)) if m.group(1) != "USER" else m.group(2)
    return found["ENTRYPOINT"], found["CMD"], found["USER"]


def kubelet_volume(directory, files):
    """Write files the way the kubelet fills a ConfigMap or Secret volume: a timestamped
    directory, ..data pointing at it, and each file a link through ..data."""
    stamp = "..2026_01_01_00_00_00.000000001"
    os.makedirs(os.path.join(directory, stamp))
    for name, (content, mode) in files.items():
        path = os.path.join(directory, stamp, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        os.symlink(os.path.join("..data", name), os.path.join(directory, name))
    os.symlink(stamp, os.path.join(directory, "..data"))


def self_signed_pair():
    """{"tls.crt": PEM, "tls.key": PEM}: a throwaway certificate for a TLS Secret's stand-in."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-subj", "/CN=etagate.example", "-days", "2",
             "-keyout", f"{d}/tls.key", "-out", f"{d}/tls.crt"],
            check=True, capture_output=True)
        return {k: open(f"{d}/{k}").read() for k in ("tls.crt", "tls.key")}


# ${NAME} as etagate reads it (src/config/env.rs): anywhere outside whole-line comments.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def config_variables(text):
    """{NAME: first line number} of the ${NAME}s etagate replaces in a configuration file."""
    found = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for name in VARIABLE.findall(line):
            found.setdefault(name, n)
    return found


def expand(text, values):
    """text with the ${NAME}s of values replaced as etagate replaces them (others left)."""
    return "\n".join(
        line if line.lstrip().startswith("#") else
        VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), line)
        for line in text.split("\n"))


# Stand-in values for the downward API fields a container's env can take (fieldRef).
def downward_values(wl, pod_name):
    meta = wl["spec"]["template"]["metadata"]
    values = {
        "metadata.name": pod_name,
        "metadata.namespace": wl["metadata"].get("namespace", "default"),
        "metadata.uid": "0b6cf1d4-5f38-4c2e-9a8e-3f1d2b7c6a90",
        "spec.nodeName": "node-1",
        "spec.serviceAccountName": wl["spec"]["template"]["spec"].get("serviceAccountName", "default"),
        "status.hostIP": "10.0.0.2",
        "status.hostIPs": "10.0.0.2",
        "status.podIP": "10.244.1.17",
        "status.podIPs": "10.244.1.17",
    }
    for kind in ("labels", "annotations"):
        for k, v in meta.get(kind, {}).items():
            values[f"metadata.{kind}['{k}']"] = v
    return values


def resource_value(container, ref):
    """A resourceFieldRef's value: limits.cpu in cores rounded up, memory in bytes."""
    kind, _, res = ref["resource"].partition(".")
    amount = container.get("resources", {}).get(kind, {}).get(res)
    if amount is None:
        return None
    divisor = ref.get("divisor", "1")
    if res == "cpu":
        def cores(q):
            q = str(q)
            return int(q[:-1]) / 1000 if q.endswith("m") else float(q)
        return str(math.ceil(cores(amount) / cores(divisor)))
    return str(math.ceil(size(amount) / size(divisor)))


def container_env(container, by_kind, image_env, downward):
    """The environment the container's process gets: the image's ENV, then the container's
    envFrom and env over it, with `downward` ({fieldPath: value}) for the downward API and
    stand-ins for Secrets. Returns it and the list of entries that could not be given a value."""
    env = dict(image_env)           # the image's ENV, then the container's env over it
    unknown = []
    for e in container.get("envFrom", []):
        prefix = e.get("prefix", "")
        ref = e.get("configMapRef", {}).get("name")
        cm = [o for o in by_kind.get("ConfigMap", []) if o["metadata"]["name"] == ref]
        if cm:
            env.update({prefix + k: v for k, v in cm[0].get("data", {}).items()})
        else:
            unknown.append(f"envFrom {e}: its keys are not in the manifests")
    for e in container.get("env", []):
        src = e.get("valueFrom")
        if src is None:
            # $(NAME) of an earlier variable is replaced, as the kubelet does.
            env[e["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                    lambda m: env.get(m.group(1), m.group(0)), str(e.get("value", "")))
        elif "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            if path in downward:
                env[e["name"]] = downward[path]
            else:
                unknown.append(f"env {e['name']}: fieldPath {path} is not one the downward API gives env")
        elif "resourceFieldRef" in src:
            v = resource_value(container, src["resourceFieldRef"])
            if v is None:
                unknown.append(f"env {e['name']}: {src['resourceFieldRef']['resource']} is not set")
            else:
                env[e["name"]] = v
        elif "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            cm = [o for o in by_kind.get("ConfigMap", []) if o["metadata"]["name"] == ref["name"]]
            if cm and ref["key"] in cm[0].get("data", {}):
                env[e["name"]] = cm[0]["data"][ref["key"]]
            elif not ref.get("optional"):
                unknown.append(f"env {e['name']}: ConfigMap {ref['name']} key {ref['key']} is not in the manifests")
        elif "secretKeyRef" in src:
            env[e["name"]] = secrets.token_hex(16)   # Secrets are created by hand: a stand-in
    return env, unknown


def inspect(rendered, outdir):
    c = Checks()
    objects = [o for o in yaml.safe_load_all(open(rendered)) if o]
    core = [o for o in objects if not o["apiVersion"].startswith(OPERATOR_GROUP)]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "core.yaml"), "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)

    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    if not c.check(len(workloads) == 1, "one workload (Deployment or StatefulSet)",
                   f"found {[w['kind'] + '/' + w['metadata']['name'] for w in workloads]}"):
        return 1
    wl = workloads[0]
    pod = wl["spec"]["template"]
    pod_labels = pod["metadata"].get("labels", {})
    spec = pod["spec"]
    containers = {x["name"]: x for x in spec["containers"]}
    names = [x["name"] for x in spec.get("initContainers", []) + spec["containers"]]
    c.check(len(names) == len(set(names)), "container names are unique in the pod (init containers included)",
            f"{names}")
    main = containers.get("etagate")
    if not c.check(main is not None, "the pod has a container named etagate"):
        return 1
    ports = {p["name"]: p["containerPort"] for x in spec["containers"] for p in x.get("ports", [])}

    def selects(selector):
        return all(pod_labels.get(k) == v for k, v in selector.items())

    # --- The image and the configuration file --------------------------------------------
    entrypoint, cmd, user = dockerfile()
    image_env = dockerfile_env()
    c.check("command" not in main and "args" not in main,
            "container etagate runs the image's ENTRYPOINT and CMD (no command or args)")
    sc = spec.get("securityContext", {})
    c.check(str(sc.get("runAsUser")) == user.split(":")[0] and
            str(sc.get("runAsGroup")) == user.split(":")[-1],
            f"runAsUser/runAsGroup are the image's USER {user}")
    conf_path = cmd[cmd.index("-c") + 1]
    mounts = {m["mountPath"]: m for m in main.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    # Kubernetes updates a ConfigMap or Secret volume by swapping its ..data symlink; a subPath
    # mount is a bind of one file that never sees the swap (nor does watch_config).
    sub = sorted(m["mountPath"] for m in mounts.values() if m.get("subPath") or m.get("subPathExpr"))
    c.check(not sub, "container etagate mounts no volume with subPath (updates would never reach it)",
            f"subPath at {sub}")
    conf_mount = mounts.get(os.path.dirname(conf_path), {})
    conf_volume = volumes.get(conf_mount.get("name"), {}).get("configMap", {})
    conf_key = os.path.basename(conf_path)
    for item in conf_volume.get("items", []):
        if item["path"] == conf_key:
            conf_key = item["key"]
    cms = [o for o in by_kind.get("ConfigMap", []) if o["metadata"]["name"] == conf_volume.get("name")]
    if not c.check(cms and conf_key in cms[0].get("data", {}) and conf_mount.get("readOnly"),
                   f"the image's config file {conf_path} is key {conf_key} of a ConfigMap mounted "
                   "whole and read-only at its directory",
                   f"mount {conf_mount or 'none'}, ConfigMap {conf_volume.get('name')}"):
        return 1
    text = cms[0]["data"][conf_key]

    # --- The container's environment and the configuration's variables --------------------
    pod_name = wl["metadata"]["name"] + ("-0" if wl["kind"] == "StatefulSet" else "-5d9f8c7b6d-x2x7k")
    downward = downward_values(wl, pod_name)
    env, unknown = container_env(main, by_kind, image_env, downward)
    c.check(not unknown, "container etagate's env has values the checks can stand in for",
            "; ".join(unknown))
    used = config_variables(text)
    undeclared = [f"${{{n}}} (line {line})" for n, line in used.items() if n not in env]
    c.check(not undeclared,
            f"every ${{NAME}} in {conf_key} is set by container etagate's env or the image's ENV"
            + (f" ({', '.join(sorted(used))})" if used else " (it uses none)"),
            f"not set: {', '.join(undeclared)}; an unset variable stops etagate "
            "(declare it under env:, e.g. valueFrom.fieldRef for the downward API)")
    # The rest of the checks read the configuration as the pod's etagate would.
    raw = yaml.safe_load(text)
    conf = yaml.safe_load(expand(text, env))
    server = conf.get("server", {})
    c.check(server.get("watch_config") is True, "server.watch_config is true")
    if "cluster" in raw:
        # Every pod must advertise its own address: the ring identity of a member.
        adv = str(raw["cluster"].get("advertise", raw["cluster"].get("listen", "")))
        pod_ip = {e["name"] for e in main.get("env", [])
                  if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP"}
        c.check(any(re.fullmatch(r"\[?\$\{" + n + r"\}\]?:\d+", adv) for n in pod_ip),
                "cluster.advertise is ${NAME}:PORT with NAME the pod IP (env fieldRef status.podIP)",
                f"advertise {adv!r}, pod IP variables {sorted(pod_ip) or 'none'}")

    # --- Ports: the config's listeners against the containers' ports ---------------------
    def port_of(address):
        return int(str(address).rsplit(":", 1)[1])
    conf_ports = {port_of(x["address"]) for x in conf.get("listeners", [])}
    admin = conf.get("admin", {}).get("address", "127.0.0.1:9090")
    c.check(str(admin).startswith("0.0.0.0:") and ports.get("admin") == port_of(admin),
            "admin.address is 0.0.0.0 on the container port named admin (probes, Prometheus)",
            f"admin.address {admin}, port admin {ports.get('admin')}")
    missing = sorted(conf_ports - set(ports.values()))
    c.check(not missing, "every listener's port is a container port", f"missing {missing}")
    if "cluster" in conf:
        cl = conf["cluster"]
        c.check(ports.get("peer") == port_of(cl["listen"]) == cl.get("dns", {}).get("port"),
                "cluster.listen and cluster.dns.port are the container port named peer")

    # --- Probes and drain --------------------------------------------------------------------
    probes = {k: main.get(k, {}).get("httpGet", {}) for k in
              ("startupProbe", "livenessProbe", "readinessProbe")}
    c.check(probes["livenessProbe"].get("path") == "/healthz" and
            probes["readinessProbe"].get("path") == "/readyz" and
            all(p.get("port") == "admin" for p in probes.values()),
            "liveness /healthz, readiness /readyz, both on the admin port")
    pre = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
    grace = duration(server.get("grace_period", "5s"))
    shutdown = duration(server.get("shutdown_timeout", "5s"))
    need = pre_s + 2 * grace + shutdown
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    c.check(pre_s > 0 and tgps > need,
            f"terminationGracePeriodSeconds {tgps} > preStop {pre_s}s + 2 x grace_period "
            f"{grace:g}s + shutdown_timeout {shutdown:g}s = {need:g}s")

    # --- Memory for the budgets ---------------------------------------------------------------
    cache = conf.get("cache", {})
    budget = size(cache.get("budget", "256MiB"))
    etag_budget = size(conf.get("etag", {}).get("buffer_budget", "64MiB"))
    disk = cache.get("disk")
    need_mem = budget + etag_budget + (DISK_QUEUE if disk else 0) + OVERHEAD
    res = main.get("resources", {})
    req = size(res.get("requests", {}).get("memory", "0"))
    lim = size(res.get("limits", {}).get("memory", "0"))
    c.check(req >= need_mem and lim >= req,
            f"memory request {mib(req)} (limit {mib(lim)}) >= cache.budget {mib(budget)} + "
            f"etag.buffer_budget {mib(etag_budget)}"
            + (f" + disk write queue {mib(DISK_QUEUE)}" if disk else "")
            + f" + overhead {mib(OVERHEAD)} = {mib(need_mem)}")

    # --- The disk tier -----------------------------------------------------------------------
    claims = {t["metadata"]["name"]: t for t in wl["spec"].get("volumeClaimTemplates", [])}
    if disk:
        m = mounts.get(disk["path"])
        c.check(wl["kind"] == "StatefulSet" and m is not None and m["name"] in claims,
                f"cache.disk.path {disk['path']} is a StatefulSet volumeClaimTemplate's mount")
    else:
        c.check(not claims, "no volumeClaimTemplates without cache.disk")

    # --- Selectors and references between the objects --------------------------------------
    for svc in by_kind.get("Service", []):
        s = svc["spec"]
        name = svc["metadata"]["name"]
        c.check(selects(s.get("selector", {})) and
                all(p.get("targetPort") in ports for p in s["ports"]),
                f"Service {name} selects the pods and targets named container ports")
    peers = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") == "None"]
    dns_name = conf.get("cluster", {}).get("dns", {}).get("name")
    if dns_name:
        c.check(any(s["metadata"]["name"] == dns_name for s in peers),
                f"cluster.dns.name {dns_name} is a headless Service")
    if wl["kind"] == "StatefulSet":
        c.check(any(s["metadata"]["name"] == wl["spec"].get("serviceName") for s in peers),
                "the StatefulSet's serviceName is the headless Service")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        c.check(selects(pdb["spec"]["selector"]["matchLabels"]), "the PodDisruptionBudget selects the pods")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        c.check(ref["kind"] == wl["kind"] and ref["name"] == wl["metadata"]["name"],
                f"the HorizontalPodAutoscaler scales {wl['kind']}/{wl['metadata']['name']}",
                f"it names {ref['kind']}/{ref['name']}")
    for np in by_kind.get("NetworkPolicy", []):
        used = {p["port"] for r in np["spec"].get("ingress", []) for p in r.get("ports", [])}
        c.check(selects(np["spec"]["podSelector"]["matchLabels"]) and used <= set(ports),
                "the NetworkPolicy selects the pods and names their ports",
                f"unknown ports {sorted(used - set(ports))}")

    # --- Prometheus Operator objects -------------------------------------------------------
    rules = by_kind.get("PrometheusRule", [])
    if c.check(len(rules) == 1, "one PrometheusRule"):
        with open(os.path.join(outdir, "rules.yml"), "w") as f:
            yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, f, sort_keys=False)
        alerts = yaml.safe_load(open(ALERTS))
        c.check(rules[0]["spec"] == {"groups": alerts["groups"]},
                f"the PrometheusRule's groups are those of {ALERTS}")
    monitors = by_kind.get("PodMonitor", [])
    if c.check(len(monitors) == 1, "one PodMonitor"):
        pm = monitors[0]
        s = pm["spec"]
        endpoints = s.get("podMetricsEndpoints", [])
        problems = []
        if pm["apiVersion"] != "monitoring.coreos.com/v1":
            problems.append(f"apiVersion {pm['apiVersion']}")
        if set(s) - PODMONITOR_SPEC_KEYS:
            problems.append(f"unknown spec keys {sorted(set(s) - PODMONITOR_SPEC_KEYS)}")
        if not selects(s.get("selector", {}).get("matchLabels", {"-": "-"})):
            problems.append("spec.selector.matchLabels does not select the pods")
        if not endpoints:
            problems.append("no podMetricsEndpoints")
        for e in endpoints:
            if set(e) - ENDPOINT_KEYS:
                problems.append(f"unknown endpoint keys {sorted(set(e) - ENDPOINT_KEYS)}")
            if e.get("port") != "admin" or e.get("path", "/metrics") != "/metrics":
                problems.append(f"endpoint {e} is not the admin port's /metrics")
        if pod_labels.get(s.get("jobLabel")) != "etagate":
            problems.append("jobLabel does not name a pod label whose value is etagate "
                            "(the alert rules select job=\"etagate\")")
        c.check(not problems, "the PodMonitor scrapes the admin port of the pods as job etagate",
                "; ".join(problems))

    # --- A pod to run: volumes and containers ----------------------------------------------
    podir = os.path.join(outdir, "pod")
    os.makedirs(os.path.join(podir, "volumes"), exist_ok=True)
    uid = int(sc.get("runAsUser", 65532))
    fs_group = int(sc.get("fsGroup", uid))
    hosts = sorted({str(s).rsplit(":", 1)[0] for u in conf.get("upstreams", {}).values()
                    for s in u.get("servers", []) if not re.fullmatch(r"[\d.]+|\[.*\]", str(s).rsplit(":", 1)[0])})

    def volume_dir(name):
        path = os.path.join(podir, "volumes", name)
        if os.path.exists(path):
            return path
        os.makedirs(path)
        v = volumes[name]
        if "configMap" in v:
            cm = next(o for o in objects if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"] == v["configMap"]["name"])
            kubelet_volume(path, {k: (d, 0o644) for k, d in cm["data"].items()})
        elif "secret" in v:
            # Stand-ins: the real Secrets are created by hand (docs/kubernetes.md). A
            # kubernetes.io/tls Secret's tls.crt and tls.key: a fresh self-signed pair.
            keys = [item["key"] for item in v["secret"]["items"]]
            pair = self_signed_pair() if {"tls.crt", "tls.key"} & set(keys) else {}
            files = {}
            for item in v["secret"]["items"]:
                content = pair.get(item["key"]) or secrets.token_hex(32) + "\n"
                files[item["path"]] = (content, v["secret"].get("defaultMode", 0o644))
            kubelet_volume(path, files)
            if os.geteuid() == 0:  # the group the kubelet gives them (fsGroup)
                for root, dirs, names in os.walk(path):
                    for n in dirs + names:
                        os.chown(os.path.join(root, n), 0, fs_group, follow_symlinks=False)
        elif "emptyDir" in v:
            os.chmod(path, 0o777)
        return path

    args = ["--uid", str(uid)]
    for m in main.get("volumeMounts", []):
        if m["name"] in claims:
            storage = claims[m["name"]]["spec"]["resources"]["requests"]["storage"]
            args += ["--tmpfs", f"{m['mountPath']}:{storage}"]
        else:
            ro = ":ro" if m.get("readOnly") else ""
            args += ["--volume", f"{volume_dir(m['name'])}:{m['mountPath']}{ro}"]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    for h in hosts:
        args += ["--host", f"127.0.0.1 {h}"]
    for name, lines in (("args", args), ("cmd", entrypoint + ["-t"] + cmd),
                        ("env", [f"{k}={v}" for k, v in env.items()])):
        with open(os.path.join(podir, "etagate." + name), "w") as f:
            f.write("\n".join(lines) + "\n")
    return 1 if c.failed else 0


def pod_env(manifest, overrides):
    """NAME=VALUE lines: the environment of container etagate of the workload in `manifest`
    (the image's ENV, then the container's env), the downward API's fields as in
    downward_values() except those given as FIELDPATH=VALUE."""
    objects = [o for o in yaml.safe_load_all(open(manifest)) if o]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    wl = next(o for o in objects if o["kind"] in ("Deployment", "StatefulSet"))
    main = next(x for x in wl["spec"]["template"]["spec"]["containers"] if x["name"] == "etagate")
    downward = downward_values(wl, wl["metadata"]["name"] + "-0")
    downward.update(o.split("=", 1) for o in overrides)
    env, unknown = container_env(main, by_kind, dockerfile_env(), downward)
    if unknown:
        print("; ".join(unknown), file=sys.stderr)
        return 1
    for k, v in env.items():
        print(f"{k}={v}")
    return 0


def main():
    args = sys.argv[1:]
    paths = [os.path.abspath(a) for a in args[1:]]
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if args[:1] == ["prometheusrule"]:
        return prometheusrule("--write" in args[1:])
    if args[:1] == ["inspect"] and len(args) == 3:
        return inspect(paths[0], paths[1])
    if args[:1] == ["pod-env"] and len(args) >= 2:
        return pod_env(paths[0], args[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
