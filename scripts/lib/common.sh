# Shell helpers shared by the scripts that start servers on loopback. Source it; it defines
# functions only.

# free_ports N: N distinct free ports on 127.0.0.1, space-separated.
# Taken below the kernel's ephemeral range (32768+ on Linux): a port the kernel handed out for
# a probe can be handed out again to any outgoing connection before our server binds it.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
want, found = int(sys.argv[1]), []
for port in random.sample(range(20000, 32000), 12000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    found.append(port)
    if len(found) == want:
        break
print(" ".join(map(str, found)))
PY
}

# stop_groups PID...: TERM each process group, up to 5 s to exit, then KILL what is left.
stop_groups() {
  local pid alive
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for pid in "$@"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
