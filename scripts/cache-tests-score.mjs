#!/usr/bin/env node
// Score a results JSON from http-cache-tests (0.4.5) by test kind.
//
// Usage:
//   node scripts/cache-tests-score.mjs --results FILE [--suite PKG_DIR] [--failures] [--groups]
//                                      [--floor-required N] [--json]
//
// --results   the CLI's output: { "<test id>": true | ["<error kind>", "<message>"] }
// --suite     the installed package folder (default:
//             ${ETAGATE_CACHE_TESTS_DIR:-$HOME/.cache/etagate/http-cache-tests}/node_modules/http-cache-tests)
// --failures  list every failing test: id, kind, group, name, error
// --groups    add a per-group table (test group x kind)
// --json      print the summary as JSON instead of tables
// --floor-required N   exit 1 when fewer than N required tests passed
//
// Scoring follows the suite's own rules (lib/display.mjs, determineTestResult):
// - the test set is tests/index.mjs plus tests/surrogate-control.mjs (what cli.mjs runs), minus
//   tests marked browser_only (the CLI skips those);
// - a test without `kind` is "required" (display.mjs: `kind === 'required' || kind === undefined`);
// - a test passes when its result is exactly `true`. A test with no result (run cut short) fails.
// The "strict" column also applies the suite's dependency rule: a passing test whose `depends_on`
// tests did not pass is shown as a dependency failure on cache-tests.fyi, not as a pass.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

function parseArgs (argv) {
  const opts = { failures: false, groups: false, json: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--results') opts.results = val()
    else if (a === '--suite') opts.suite = val()
    else if (a === '--failures') opts.failures = true
    else if (a === '--groups') opts.groups = true
    else if (a === '--json') opts.json = true
    else if (a === '--floor-required') {
      opts.floor = Number(val())
      if (!Number.isInteger(opts.floor) || opts.floor < 0) usage('--floor-required takes a number')
    } else if (a === '-h' || a === '--help') usage()
    else usage(`unknown argument ${a}`)
  }
  if (!opts.results) usage('--results is required')
  if (!opts.suite) {
    const cache = process.env.ETAGATE_CACHE_TESTS_DIR ||
      path.join(os.homedir(), '.cache', 'etagate', 'http-cache-tests')
    opts.suite = path.join(cache, 'node_modules', 'http-cache-tests')
  }
  return opts
}

function usage (msg) {
  if (msg) console.error(msg)
  console.error('usage: cache-tests-score.mjs --results FILE [--suite PKG_DIR] [--failures] [--groups] [--floor-required N] [--json]')
  process.exit(2)
}

const KINDS = ['required', 'optimal', 'check']

async function loadSuites (pkgDir) {
  const load = async rel => (await import(pathToFileURL(path.join(pkgDir, rel)).href)).default
  // index.mjs exports a shared array: copy it before appending, as cli.mjs does with push().
  const suites = [...await load('tests/index.mjs')]
  const surrogate = await load('tests/surrogate-control.mjs')
  if (!suites.includes(surrogate)) suites.push(surrogate)
  return suites
}

function oneLine (s) {
  return String(s).replace(/\s+/g, ' ').trim()
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const results = JSON.parse(fs.readFileSync(opts.results, 'utf8'))
  const suites = await loadSuites(opts.suite)

  const tests = new Map() // id -> { test, group, kind }
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (test.browser_only === true) continue
      const kind = test.kind === undefined ? 'required' : test.kind
      if (!KINDS.includes(kind)) throw new Error(`unknown kind ${kind} for ${test.id}`)
      tests.set(test.id, { test, group: suite.id, kind })
    }
  }

  const passed = id => results[id] === true
  const strictMemo = new Map()
  const strictPass = id => {
    if (strictMemo.has(id)) return strictMemo.get(id)
    strictMemo.set(id, false) // guards against cycles
    const entry = tests.get(id)
    let ok = passed(id)
    if (ok && entry && entry.test.depends_on) ok = entry.test.depends_on.every(dep => strictPass(dep))
    strictMemo.set(id, ok)
    return ok
  }

  const blank = () => ({ total: 0, passed: 0, strict: 0, setup: 0, retry: 0, missing: 0 })
  const byKind = Object.fromEntries(KINDS.map(k => [k, blank()]))
  const byGroup = new Map()
  const failures = []
  for (const [id, { test, group, kind }] of tests) {
    if (!byGroup.has(group)) byGroup.set(group, Object.fromEntries(KINDS.map(k => [k, blank()])))
    for (const row of [byKind[kind], byGroup.get(group)[kind]]) {
      row.total++
      if (passed(id)) row.passed++
      if (strictPass(id)) row.strict++
      const r = results[id]
      if (r === undefined) row.missing++
      else if (Array.isArray(r) && r[0] === 'Setup') {
        if (r[1] === 'retry') row.retry++
        else row.setup++
      }
    }
    if (!passed(id)) {
      const r = results[id]
      const [errKind, message] = r === undefined ? ['NotRun', 'no result (run cut short?)']
        : Array.isArray(r) ? r : ['unknown', JSON.stringify(r)]
      failures.push({ id, kind, group, name: oneLine(test.name), error: errKind, message: oneLine(message) })
    }
  }
  const unknownIds = Object.keys(results).filter(id => !tests.has(id))

  if (opts.json) {
    console.log(JSON.stringify({ byKind, byGroup: Object.fromEntries(byGroup), failures, unknownIds }, null, 2))
  } else {
    const pad = (s, n) => String(s).padEnd(n)
    const lpad = (s, n) => String(s).padStart(n)
    console.log(`${pad('kind', 10)}${lpad('passed', 8)}${lpad('total', 7)}${lpad('strict', 8)}${lpad('setup', 7)}${lpad('retry', 7)}${lpad('notrun', 8)}`)
    for (const k of KINDS) {
      const r = byKind[k]
      console.log(`${pad(k, 10)}${lpad(r.passed, 8)}${lpad(r.total, 7)}${lpad(r.strict, 8)}${lpad(r.setup, 7)}${lpad(r.retry, 7)}${lpad(r.missing, 8)}`)
    }
    console.log('(passed = result true; strict = passed and every depends_on test passed, as cache-tests.fyi displays;')
    console.log(' setup/retry = harness-level failures: the proxy interfered with PUT /config, GET /state, or retried a request)')
    if (opts.groups) {
      console.log('')
      console.log(`${pad('group', 20)}${lpad('required', 10)}${lpad('optimal', 10)}${lpad('check', 10)}`)
      for (const [group, row] of byGroup) {
        const cell = k => row[k].total ? `${row[k].passed}/${row[k].total}` : '-'
        console.log(`${pad(group, 20)}${lpad(cell('required'), 10)}${lpad(cell('optimal'), 10)}${lpad(cell('check'), 10)}`)
      }
    }
    if (opts.failures) {
      console.log('')
      console.log(`failing tests (${failures.length}):`)
      const order = { required: 0, optimal: 1, check: 2 }
      failures.sort((a, b) => order[a.kind] - order[b.kind] || a.group.localeCompare(b.group) || a.id.localeCompare(b.id))
      for (const f of failures) {
        console.log(`${f.kind.toUpperCase()} ${f.id} [${f.group}] ${f.name}`)
        console.log(`    ${f.error}: ${f.message}`)
      }
    }
    if (unknownIds.length) console.log(`\nnote: ${unknownIds.length} result ids are not in the suite: ${unknownIds.join(', ')}`)
  }

  if (opts.floor !== undefined) {
    const got = byKind.required.passed
    if (got < opts.floor) {
      console.error(`FAIL: ${got} required tests passed, floor is ${opts.floor}`)
      process.exit(1)
    }
    if (!opts.json) console.log(`required floor ${opts.floor}: ok (${got})`)
  }
}

main().catch(err => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(2)
})
