/* shiplog dashboard: vanilla JavaScript, no build step, no external network.
 *
 * Views (hash routing): #/delivery (default), #/audit, #/deployment/<id>, #/live.
 * Everything shown comes from POST /graphql (queries), the graphql-transport-ws
 * subscription on /graphql, and GET /v1/events and /v1/checkpoint (downloads),
 * with the bearer token the user signs in with (kept in sessionStorage only).
 *
 * All text from the API is inserted with textContent (see `h`), never as HTML.
 */
'use strict';

(function () {
  // ---------------------------------------------------------------------------
  // Constants
  // ---------------------------------------------------------------------------

  const TOKEN_KEY = 'shiplog.token';
  const GRAPHQL = '/graphql';
  const LIVE_MAX_ROWS = 200;
  const DAY_MS = 86400000;

  /** Event types, as the ledger names them (services/core/src/event.rs). */
  const EVENT_TYPES = [
    'commit.pushed', 'change.opened', 'change.reviewed', 'change.merged',
    'build.started', 'build.finished', 'tests.finished', 'scan.finished',
    'artifact.published', 'approval.granted', 'approval.revoked',
    'deployment.started', 'deployment.succeeded', 'deployment.failed', 'deployment.rolledback',
    'canary.analyzed', 'infra.planned', 'infra.applied', 'migration.applied',
    'incident.opened', 'incident.resolved', 'flag.changed', 'cdevent.received',
    'decision.recorded', 'policy.activated', 'token.created', 'token.revoked',
  ];

  const BAND_TEXT = { ELITE: 'Elite', HIGH: 'High', MEDIUM: 'Medium', LOW: 'Low' };

  // ---------------------------------------------------------------------------
  // Queries (checked against schema/shiplog.graphql)
  // ---------------------------------------------------------------------------

  const Q_VERIFY_TOKEN = 'query VerifyToken { __typename }';

  const Q_DELIVERY = `query Delivery($filter: DoraFilter, $list: DoraFilter, $first: Int) {
  dora(filter: $filter) {
    environment services from to attributionWindowHours
    deployments deploymentFrequency
    leadTime { median p90 count }
    changeFailRate failedDeployments
    recoveryTime { median p90 count }
    unrecoveredFailures reworkRate
    bands { deploymentFrequency leadTime changeFailRate recoveryTime }
    trend {
      start end deployments deploymentFrequency
      leadTime { median p90 count }
      changeFailRate failedDeployments
    }
  }
  pipeline(filter: $list) {
    builds buildSuccessRate
    buildDuration { median p90 count }
    timeToDeploy { median p90 count }
    deploymentAttempts failedAttempts attemptFailureRate
  }
  deployments(filter: $list, first: $first) {
    seq deploymentId service environment artifact version occurredAt
    emergency fixes
    leadTime { median p90 count }
    failed rolledBack recoveryTime
  }
}`;

  const Q_SERVICE_NAMES = `query ServiceNames($filter: DoraFilter) {
  deployments(filter: $filter, first: 500) { service environment }
}`;

  const Q_AUDIT = `query AuditEvents($filter: EventFilter, $first: Int, $after: String) {
  events(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node { seq id type stream streamVersion occurredAt recordedAt recordedBy actor source data links leafHash }
    }
  }
}`;

  const Q_CHECKPOINT = `query Checkpoint {
  checkpoint { origin size rootHash note verifierKey intact integrityProblem projectedSeq }
}`;

  const Q_DEPLOYMENT = `query Deployment($id: String!) {
  deployment(id: $id) {
    deploymentId
    summary {
      seq deploymentId service environment artifact version occurredAt
      emergency fixes commits
      leadTime { median p90 count }
      failed rolledBack recoveryTime
    }
    evidence {
      commits { ...EvidenceEvent }
      changes { ...EvidenceEvent }
      builds { ...EvidenceEvent }
      tests { ...EvidenceEvent }
      scans { ...EvidenceEvent }
      artifacts { ...EvidenceEvent }
      approvals { ...EvidenceEvent }
      decisions { ...EvidenceEvent }
      deployments { ...EvidenceEvent }
      canaries { ...EvidenceEvent }
      rollbacks { ...EvidenceEvent }
      incidents { ...EvidenceEvent }
    }
  }
}
fragment EvidenceEvent on Event { seq id type stream occurredAt recordedAt recordedBy actor source data }`;

  const Q_LIVE_BACKFILL = `query LiveBackfill($filter: EventFilter, $after: String) {
  events(filter: $filter, first: 200, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { seq type stream occurredAt recordedBy actor data }
  }
}`;

  const S_LIVE = `subscription LiveEvents($filter: EventFilter) {
  events(filter: $filter) { seq type stream occurredAt recordedBy actor data }
}`;

  // ---------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------

  /**
   * Build an element. attrs: `class`, `text` (textContent), `dataset` (object),
   * `on` (object of listeners), boolean properties, anything else as an attribute.
   * Children: nodes, strings (text nodes), arrays; null/undefined/false skipped.
   */
  function h(tag, attrs, ...children) {
    const svg = tag.startsWith('svg:');
    const el = svg
      ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
      : document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.setAttribute('class', v);
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'dataset') {
          for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) el.dataset[dk] = String(dv);
        } else if (k === 'on') {
          for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
        } else if (!svg && (k === 'disabled' || k === 'hidden' || k === 'checked' || k === 'open' || k === 'selected' || k === 'required')) {
          el[k] = Boolean(v);
        } else if (!svg && k === 'value') {
          el.value = String(v);
        } else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function $(id) {
    return document.getElementById(id);
  }

  /** The exact machine value for data-value: String() of the JSON number, '' for null. */
  function machine(v) {
    return v === null || v === undefined ? '' : String(v);
  }

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const oneFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const twoFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

  function fmtInt(n) {
    return n === null || n === undefined ? '—' : intFmt.format(n);
  }

  /** People's numbers: 1 decimal under 100, none above. */
  function fmtNum(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '—';
    if (Math.abs(n) >= 100) return intFmt.format(n);
    if (Math.abs(n) > 0 && Math.abs(n) < 0.1) return twoFmt.format(n);
    return oneFmt.format(n);
  }

  function fmtPercent(rate) {
    if (rate === null || rate === undefined) return '—';
    return `${oneFmt.format(rate * 100)} %`;
  }

  /** Seconds to "2 d 3 h", "4 h 12 min", "12 min", "45 s". */
  function fmtDuration(sec) {
    if (sec === null || sec === undefined || Number.isNaN(sec)) return '—';
    const s = Math.max(0, Number(sec));
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) {
      let m = Math.floor(s / 60);
      let r = Math.round(s - m * 60);
      if (r === 60) { m += 1; r = 0; }
      return r ? `${m} min ${r} s` : `${m} min`;
    }
    if (s < DAY_MS / 1000) {
      let hr = Math.floor(s / 3600);
      let m = Math.round((s - hr * 3600) / 60);
      if (m === 60) { hr += 1; m = 0; }
      if (hr === 24) return '1 d';
      return m ? `${hr} h ${m} min` : `${hr} h`;
    }
    let d = Math.floor(s / 86400);
    let hr = Math.round((s - d * 86400) / 3600);
    if (hr === 24) { d += 1; hr = 0; }
    return hr ? `${d} d ${hr} h` : `${d} d`;
  }

  function parseTime(iso) {
    if (!iso) return null;
    // Keep milliseconds only: some engines refuse nanoseconds.
    const d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
    return Number.isNaN(d.getTime()) ? null : d;
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  /** "2026-11-23 15:28 UTC". */
  function fmtTime(iso) {
    const d = parseTime(iso);
    if (!d) return iso ? String(iso) : '—';
    return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  }

  /** "2026-11-23 15:28:33". */
  function fmtTimeSec(iso) {
    const d = parseTime(iso);
    if (!d) return iso ? String(iso) : '—';
    return d.toISOString().slice(0, 19).replace('T', ' ');
  }

  /** "23 Nov 2026". */
  function fmtDate(iso) {
    const d = iso instanceof Date ? iso : parseTime(iso);
    if (!d) return '—';
    return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
  }

  function timeEl(iso, withSeconds) {
    return h('time', { datetime: iso || null, text: withSeconds ? fmtTimeSec(iso) : fmtTime(iso) });
  }

  function shortHash(s, n) {
    if (!s) return '';
    s = String(s);
    const m = /^(sha256:)?(.*)$/.exec(s);
    const body = m[2];
    return (m[1] || '') + (body.length > (n || 12) ? `${body.slice(0, n || 12)}…` : body);
  }

  function plural(n, one, many) {
    return `${fmtInt(n)} ${n === 1 ? one : (many || `${one}s`)}`;
  }

  function isoDate(d) {
    return d.toISOString().slice(0, 10);
  }

  function get(obj, ...path) {
    let v = obj;
    for (const p of path) {
      if (v === null || v === undefined || typeof v !== 'object') return undefined;
      v = v[p];
    }
    return v;
  }

  function str(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // ---------------------------------------------------------------------------
  // API access
  // ---------------------------------------------------------------------------

  class AuthError extends Error {}

  let token = null;
  try {
    token = sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    token = null;
  }

  function authHeaders(extra, tok) {
    return Object.assign({ Authorization: `Bearer ${tok || token}` }, extra || {});
  }

  async function readError(res) {
    const text = await res.text().catch(() => '');
    try {
      const j = JSON.parse(text);
      if (j && (j.message || j.error)) return { message: j.message || j.error, code: j.error || String(res.status), body: j };
      if (j && Array.isArray(j.errors) && j.errors.length) {
        return { message: j.errors[0].message, code: get(j.errors[0], 'extensions', 'code') || String(res.status), body: j };
      }
    } catch (e) { /* not JSON */ }
    return { message: text.trim() || `HTTP ${res.status} ${res.statusText}`, code: String(res.status), body: null };
  }

  /** fetch() with the token; a 401 signs out and throws AuthError. */
  async function apiFetch(url, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = authHeaders(opts.headers);
    opts.cache = 'no-store';
    const res = await fetch(url, opts);
    if (res.status === 401) {
      const err = await readError(res);
      handleUnauthenticated(err.message);
      throw new AuthError(err.message);
    }
    return res;
  }

  /**
   * POST a GraphQL operation. Resolves to {data, errors, status}; errors are the
   * GraphQL errors (or the REST error of a non-GraphQL answer, as one error).
   * Throws AuthError on 401 (after signing out) and Error on network failure.
   */
  async function gql(query, variables) {
    let res;
    try {
      res = await apiFetch(GRAPHQL, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ query, variables: variables || {} }),
      });
    } catch (e) {
      if (e instanceof AuthError) throw e;
      throw new Error(`could not reach the server (${e.message})`);
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = null;
    }
    if (body && (Object.prototype.hasOwnProperty.call(body, 'data') || Array.isArray(body.errors))) {
      return { data: body.data || null, errors: body.errors || [], status: res.status };
    }
    if (body && (body.error || body.message)) {
      return {
        data: null,
        errors: [{ message: body.message || body.error, extensions: { code: body.error || String(res.status) } }],
        status: res.status,
      };
    }
    return {
      data: null,
      errors: [{ message: `unexpected answer: HTTP ${res.status} ${text.slice(0, 200)}`, extensions: { code: String(res.status) } }],
      status: res.status,
    };
  }

  function errorCode(e) {
    return get(e, 'extensions', 'code') || '';
  }

  function isForbidden(result) {
    return result.status === 403 || result.errors.some((e) => errorCode(e) === 'forbidden');
  }

  /** Unique "message (code)" lines of GraphQL errors. */
  function errorLines(errors) {
    const seen = new Set();
    const out = [];
    for (const e of errors) {
      const code = errorCode(e);
      const line = code ? `${e.message} (${code})` : String(e.message);
      if (!seen.has(line)) {
        seen.add(line);
        out.push(line);
      }
    }
    return out;
  }

  // ---------------------------------------------------------------------------
  // Status regions
  // ---------------------------------------------------------------------------

  /** A status region: role=status, aria-live=polite. */
  function statusRegion(id) {
    return h('div', { id, class: 'status', role: 'status', 'aria-live': 'polite' });
  }

  /** kind: 'loading' | 'ok' | 'error' | 'warning' | 'info'. lines: string or array. */
  function setStatus(el, kind, lines) {
    if (!el) return;
    clear(el);
    el.className = `status status-${kind}`;
    const list = Array.isArray(lines) ? lines : [lines];
    if (kind === 'error' || kind === 'warning') {
      if (list.length === 1) {
        el.appendChild(h('p', null, h('strong', { text: kind === 'error' ? 'Error: ' : 'Note: ' }), list[0]));
      } else {
        el.appendChild(h('p', null, h('strong', { text: kind === 'error' ? 'Errors:' : 'Notes:' })));
        el.appendChild(h('ul', null, list.map((l) => h('li', { text: l }))));
      }
    } else {
      for (const l of list) if (l) el.appendChild(h('p', { text: l }));
    }
  }

  function showGraphQLErrors(el, result, prefix) {
    const lines = errorLines(result.errors).map((l) => (prefix ? `${prefix}: ${l}` : l));
    setStatus(el, result.data ? 'warning' : 'error', lines);
  }

  // ---------------------------------------------------------------------------
  // Routing and the shell
  // ---------------------------------------------------------------------------

  let viewGen = 0; // bumps on every render: stale async results are dropped
  let currentView = null;
  let firstRender = true;

  function parseRoute() {
    if (location.hash && !location.hash.startsWith('#/')) return { name: 'delivery' };
    const raw = location.hash.replace(/^#\/?/, '');
    const [path] = raw.split('?');
    const parts = path.split('/');
    const name = parts[0] || 'delivery';
    if (name === 'deployment') {
      let id = parts.slice(1).join('/');
      try {
        id = decodeURIComponent(id);
      } catch (e) { /* keep raw */ }
      return { name: 'deployment', id };
    }
    if (name === 'audit' || name === 'live' || name === 'delivery') return { name };
    return { name: 'notfound', raw };
  }

  function main() {
    return $('main');
  }

  function setNav(signedIn, active) {
    $('site-nav').hidden = !signedIn;
    $('header-tools').hidden = !signedIn;
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === active) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function render() {
    viewGen += 1;
    const gen = viewGen;
    const route = parseRoute();
    if (!token) {
      renderSignIn(null);
      return;
    }
    setNav(true, route.name === 'deployment' ? null : route.name);
    const m = clear(main());
    currentView = route.name;
    let view;
    switch (route.name) {
      case 'delivery': view = renderDelivery(gen); document.title = 'Delivery · shiplog'; break;
      case 'audit': view = renderAudit(gen); document.title = 'Audit · shiplog'; break;
      case 'live': view = renderLive(gen); document.title = 'Live · shiplog'; break;
      case 'deployment': view = renderDeployment(gen, route.id); document.title = `Deployment ${route.id} · shiplog`; break;
      default: view = renderNotFound(route.raw); document.title = 'Not found · shiplog';
    }
    m.appendChild(view);
    if (!firstRender) {
      const heading = m.querySelector('h1');
      if (heading) {
        heading.setAttribute('tabindex', '-1');
        heading.focus();
      }
    }
    firstRender = false;
  }

  function isCurrent(gen) {
    return gen === viewGen;
  }

  function renderNotFound(raw) {
    return h('section', { class: 'view', id: 'notfound-view' },
      h('h1', { text: 'Page not found' }),
      h('p', null, `There is no page “${raw}”. Go to `, h('a', { href: '#/delivery', text: 'Delivery' }), ', ',
        h('a', { href: '#/audit', text: 'Audit' }), ' or ', h('a', { href: '#/live', text: 'Live' }), '.'));
  }

  // ---------------------------------------------------------------------------
  // Sign-in
  // ---------------------------------------------------------------------------

  function handleUnauthenticated(message) {
    if (!token) return; // already signed out (several requests may fail at once)
    const wasSignedIn = true;
    token = null;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* ignore */ }
    liveStop();
    viewGen += 1;
    renderSignIn(wasSignedIn ? `The server refused the token: ${message || 'unauthenticated'}. Sign in again.` : message);
  }

  function renderSignIn(message) {
    setNav(false, null);
    currentView = 'signin';
    document.title = 'Sign in · shiplog';
    const m = clear(main());
    const status = h('div', { id: 'signin-status', class: 'status', role: 'status', 'aria-live': 'polite' });
    const input = h('input', {
      id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
      required: true, 'aria-describedby': 'token-hint signin-status',
    });
    const submit = h('button', { id: 'signin-submit', type: 'submit', class: 'button', text: 'Sign in' });
    const form = h('form', { id: 'signin-form', class: 'panel signin-form', novalidate: true },
      h('div', { class: 'field' },
        h('label', { for: 'token', text: 'API token' }),
        input,
        h('p', { id: 'token-hint', class: 'hint' },
          'An admin makes tokens with ', h('code', { text: 'shiplog token create --role auditor --name …' }), '.')),
      h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const candidate = input.value.trim();
      if (!candidate) {
        input.setAttribute('aria-invalid', 'true');
        setStatus(status, 'error', 'Enter an API token.');
        input.focus();
        return;
      }
      input.removeAttribute('aria-invalid');
      submit.disabled = true;
      setStatus(status, 'loading', 'Checking the token…');
      try {
        const res = await fetch(GRAPHQL, {
          method: 'POST',
          cache: 'no-store',
          headers: authHeaders({ 'Content-Type': 'application/json', Accept: 'application/json' }, candidate),
          body: JSON.stringify({ query: Q_VERIFY_TOKEN }),
        });
        if (res.status === 401) {
          const err = await readError(res);
          setStatus(status, 'error', `The server refused this token: ${err.message}`);
          input.setAttribute('aria-invalid', 'true');
          submit.disabled = false;
          input.focus();
          return;
        }
      } catch (e) {
        setStatus(status, 'error', `Could not reach the server: ${e.message}`);
        submit.disabled = false;
        return;
      }
      token = candidate;
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch (e) { /* the token then lasts for this page only */ }
      input.value = '';
      liveStart();
      firstRender = false;
      render();
    });
    m.appendChild(h('section', { class: 'view signin-view', id: 'signin-view' },
      h('h1', { text: 'Sign in to shiplog' }),
      message ? h('div', { class: 'status status-error', role: 'alert' }, h('p', { text: message })) : null,
      form,
      status,
      h('p', { class: 'hint' }, 'The token stays in this browser tab (session storage) and is sent only to this server.')));
    input.focus();
  }

  function signOut() {
    token = null;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* ignore */ }
    liveStop();
    live.count = 0;
    live.rows = [];
    live.seen.clear();
    live.lastSeq = null;
    updateLiveIndicator();
    viewGen += 1;
    renderSignIn('You are signed out.');
  }

  // ---------------------------------------------------------------------------
  // Delivery view
  // ---------------------------------------------------------------------------

  const delivery = {
    form: { service: '', team: '', environment: 'production', period: '30', from: '', to: '' },
    services: new Set(),
    environments: new Set(['production', 'staging']),
    namesLoaded: false,
    seq: 0,
  };

  function renderDelivery(gen) {
    const f = delivery.form;
    const view = h('section', { class: 'view', id: 'delivery-view', 'aria-labelledby': 'delivery-title', dataset: { loaded: 'false' } });

    const servicesList = h('datalist', { id: 'services-list' });
    const envList = h('datalist', { id: 'environments-list' });
    fillDatalists(servicesList, envList);

    const inService = h('input', { id: 'f-service', name: 'service', type: 'text', list: 'services-list', autocomplete: 'off', value: f.service, 'aria-describedby': 'scope-hint' });
    const inTeam = h('input', { id: 'f-team', name: 'team', type: 'text', autocomplete: 'off', value: f.team, 'aria-describedby': 'scope-hint' });
    const inEnv = h('input', { id: 'f-environment', name: 'environment', type: 'text', list: 'environments-list', autocomplete: 'off', value: f.environment });
    const period = h('select', { id: 'f-period', name: 'period' },
      h('option', { value: '30', text: 'Last 30 days' }),
      h('option', { value: '90', text: 'Last 90 days' }),
      h('option', { value: '365', text: 'Last 365 days' }),
      h('option', { value: 'custom', text: 'Custom dates' }));
    period.value = f.period;
    const inFrom = h('input', { id: 'f-from', name: 'from', type: 'date', value: f.from, 'aria-describedby': 'period-hint' });
    const inTo = h('input', { id: 'f-to', name: 'to', type: 'date', value: f.to, 'aria-describedby': 'period-hint' });
    period.addEventListener('change', () => {
      if (period.value !== 'custom') {
        inFrom.value = '';
        inTo.value = '';
      } else {
        inFrom.focus();
      }
    });
    for (const d of [inFrom, inTo]) {
      d.addEventListener('input', () => {
        if (inFrom.value || inTo.value) period.value = 'custom';
      });
    }

    const status = statusRegion('delivery-status');
    const form = h('form', { id: 'delivery-form', class: 'panel filter-form', 'aria-label': 'Delivery filter' },
      h('fieldset', { class: 'fieldset' },
        h('legend', { text: 'Scope' }),
        h('div', { class: 'field-row' },
          h('div', { class: 'field' }, h('label', { for: 'f-service', text: 'Service' }), inService),
          h('div', { class: 'field' }, h('label', { for: 'f-team', text: 'Team' }), inTeam)),
        h('p', { id: 'scope-hint', class: 'hint', text: 'Leave both empty for everyone; give a service or a team, not both.' })),
      h('fieldset', { class: 'fieldset' },
        h('legend', { text: 'Where and when' }),
        h('div', { class: 'field-row' },
          h('div', { class: 'field' }, h('label', { for: 'f-environment', text: 'Environment' }), inEnv),
          h('div', { class: 'field' }, h('label', { for: 'f-period', text: 'Period' }), period),
          h('div', { class: 'field' }, h('label', { for: 'f-from', text: 'From (UTC)' }), inFrom),
          h('div', { class: 'field' }, h('label', { for: 'f-to', text: 'To (UTC, not included)' }), inTo)),
        h('p', { id: 'period-hint', class: 'hint', text: 'Dates give a custom period: from the start of “From” up to the start of “To”.' })),
      h('div', { class: 'actions' }, h('button', { id: 'delivery-apply', type: 'submit', class: 'button', text: 'Apply' })),
      servicesList, envList);

    const results = h('div', { id: 'delivery-results' });

    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const next = {
        service: inService.value.trim(),
        team: inTeam.value.trim(),
        environment: inEnv.value.trim() || 'production',
        period: period.value,
        from: inFrom.value,
        to: inTo.value,
      };
      if (next.from || next.to) next.period = 'custom';
      inService.removeAttribute('aria-invalid');
      inTeam.removeAttribute('aria-invalid');
      inFrom.removeAttribute('aria-invalid');
      if (next.service && next.team) {
        inService.setAttribute('aria-invalid', 'true');
        inTeam.setAttribute('aria-invalid', 'true');
        setStatus(status, 'error', 'Choose a service or a team, not both.');
        inService.focus();
        return;
      }
      if (next.from && next.to && next.from >= next.to) {
        inFrom.setAttribute('aria-invalid', 'true');
        setStatus(status, 'error', '“From” must be before “To”.');
        inFrom.focus();
        return;
      }
      period.value = next.period;
      delivery.form = next;
      loadDelivery(gen, view, status, results);
    });

    append(view, [
      h('div', { class: 'view-head' },
        h('h1', { id: 'delivery-title', text: 'Delivery performance' }),
        h('p', { class: 'lede', text: 'The four DORA keys and rework rate, computed from the deployments, commits, rollbacks and incidents recorded in the ledger.' })),
      form,
      status,
      results,
    ]);

    loadDelivery(gen, view, status, results);
    if (!delivery.namesLoaded) loadServiceNames(gen, servicesList, envList);
    return view;
  }

  function fillDatalists(servicesList, envList) {
    clear(servicesList);
    for (const s of Array.from(delivery.services).sort()) servicesList.appendChild(h('option', { value: s }));
    clear(envList);
    for (const e of Array.from(delivery.environments).sort()) envList.appendChild(h('option', { value: e }));
  }

  function noteNames(deployments) {
    let changed = false;
    for (const d of deployments || []) {
      if (d.service && !delivery.services.has(d.service)) {
        delivery.services.add(d.service);
        changed = true;
      }
      if (d.environment && !delivery.environments.has(d.environment)) {
        delivery.environments.add(d.environment);
        changed = true;
      }
    }
    return changed;
  }

  async function loadServiceNames(gen, servicesList, envList) {
    try {
      const filter = { environment: 'production', from: new Date(Date.now() - 365 * DAY_MS).toISOString() };
      const r = await gql(Q_SERVICE_NAMES, { filter });
      if (r.data && r.data.deployments) {
        delivery.namesLoaded = true;
        noteNames(r.data.deployments);
        if (isCurrent(gen)) fillDatalists(servicesList, envList);
      }
    } catch (e) {
      /* the datalist is only a convenience */
    }
  }

  function deliveryFilters(f) {
    const filter = { environment: f.environment || 'production' };
    if (f.service) filter.service = f.service;
    if (f.team) filter.team = f.team;
    if (f.period === 'custom') {
      if (f.from) filter.from = `${f.from}T00:00:00Z`;
      if (f.to) filter.to = `${f.to}T00:00:00Z`;
    } else if (f.period === '90' || f.period === '365') {
      const now = Date.now();
      filter.from = new Date(now - Number(f.period) * DAY_MS).toISOString();
      filter.to = new Date(now).toISOString();
    } // 30 days: the API's default window (the last 30 days)
    const list = Object.assign({}, filter);
    filter.bucket = 'WEEK';
    return { filter, list };
  }

  function scopeText(f, dora) {
    if (f.service) return `service ${f.service}`;
    if (f.team) {
      const svcs = dora && dora.services ? ` (${dora.services.join(', ')})` : '';
      return `team ${f.team}${svcs}`;
    }
    return 'every service';
  }

  async function loadDelivery(gen, view, status, results) {
    const mySeq = ++delivery.seq;
    const f = delivery.form;
    view.dataset.loaded = 'false';
    view.setAttribute('aria-busy', 'true');
    results.classList.add('is-stale');
    const apply = $('delivery-apply');
    if (apply) apply.disabled = true;
    setStatus(status, 'loading', 'Loading the delivery figures…');
    const { filter, list } = deliveryFilters(f);
    let r;
    try {
      r = await gql(Q_DELIVERY, { filter, list, first: 100 });
    } catch (e) {
      if (e instanceof AuthError) return;
      if (!isCurrent(gen) || mySeq !== delivery.seq) return;
      view.dataset.loaded = 'error';
      view.removeAttribute('aria-busy');
      if (apply) apply.disabled = false;
      setStatus(status, 'error', `The figures could not be loaded: ${e.message}`);
      return;
    }
    if (!isCurrent(gen) || mySeq !== delivery.seq) return;
    if (apply) apply.disabled = false;
    view.removeAttribute('aria-busy');
    results.classList.remove('is-stale');
    const data = r.data || {};
    if (!data.dora) {
      view.dataset.loaded = 'error';
      clear(results);
      showGraphQLErrors(status, r);
      return;
    }
    if (data.deployments && noteNames(data.deployments)) {
      fillDatalists($('services-list'), $('environments-list'));
    }
    clear(results);
    const dora = data.dora;
    append(results, [
      h('p', { class: 'window', id: 'delivery-window' },
        h('strong', { text: dora.environment }), ` · ${scopeText(f, dora)} · `,
        timeEl(dora.from), ' to ', timeEl(dora.to),
        ` (${fmtNum((parseTime(dora.to) - parseTime(dora.from)) / DAY_MS)} days) · incidents attributed within ${fmtNum(dora.attributionWindowHours)} h`),
      doraCards(dora),
      data.pipeline ? pipelineSection(data.pipeline) : null,
      trendSection(dora),
      deploymentsSection(data.deployments, dora),
    ]);
    view.dataset.loaded = 'true';
    if (r.errors.length) showGraphQLErrors(status, r, 'Part of the answer is missing');
    else setStatus(status, 'ok', `Figures loaded for ${scopeText(f, dora)} in ${dora.environment}: ${plural(dora.deployments, 'deployment')}.`);
  }

  function bandEl(band, noBandText) {
    if (!band) {
      return h('p', { class: 'band band-none' }, h('span', { class: 'band-label', text: 'DORA band: ' }),
        h('span', { class: 'band-badge', text: noBandText || 'not rated (no data)' }));
    }
    return h('p', { class: `band band-${String(band).toLowerCase()}` },
      h('span', { class: 'band-label', text: 'DORA band: ' }),
      h('span', { class: 'band-badge', text: BAND_TEXT[band] || String(band) }));
  }

  function figureCard(opts) {
    const band = opts.band || '';
    return h('article', {
      class: `card figure-card${band ? ` band-${band.toLowerCase()}` : ''}`,
      'aria-labelledby': `fig-${opts.figure}-title`,
      dataset: { figure: opts.figure, value: machine(opts.value), band },
    },
    h('h3', { id: `fig-${opts.figure}-title`, class: 'figure-title', text: opts.title }),
    h('p', { class: 'figure-value' }, h('span', { class: 'figure-number', text: opts.main }), opts.unit ? h('span', { class: 'figure-unit', text: ` ${opts.unit}` }) : null),
    opts.sub ? h('p', { class: 'figure-sub', text: opts.sub }) : null,
    bandEl(band, opts.noBandText),
    h('p', { class: 'figure-counts', text: opts.counts }));
  }

  function doraCards(d) {
    const b = d.bands || {};
    const freq = d.deploymentFrequency;
    const rework = d.reworkRate;
    const reworkCount = rework === null || rework === undefined ? null : Math.round(rework * d.deployments);
    const cards = [
      figureCard({
        figure: 'deploymentFrequency', title: 'Deployment frequency', value: freq, band: b.deploymentFrequency,
        main: fmtNum(freq), unit: 'per day',
        sub: `${fmtNum(freq * 7)} per week`,
        counts: `${plural(d.deployments, 'deployment')} in the period`,
      }),
      figureCard({
        figure: 'leadTimeMedian', title: 'Lead time for changes', value: d.leadTime.median, band: b.leadTime,
        main: fmtDuration(d.leadTime.median), unit: d.leadTime.median === null ? '' : 'median',
        sub: `p90 ${fmtDuration(d.leadTime.p90)}`,
        counts: `from ${plural(d.leadTime.count, 'commit')} reaching ${d.environment}`,
      }),
      figureCard({
        figure: 'changeFailRate', title: 'Change fail rate', value: d.changeFailRate, band: b.changeFailRate,
        main: fmtPercent(d.changeFailRate), unit: '',
        sub: 'rolled back, caused an incident, or fixed by a later deployment',
        counts: `${fmtInt(d.failedDeployments)} of ${plural(d.deployments, 'deployment')} failed`,
      }),
      figureCard({
        figure: 'recoveryTimeMedian', title: 'Time to restore', value: d.recoveryTime.median, band: b.recoveryTime,
        main: fmtDuration(d.recoveryTime.median), unit: d.recoveryTime.median === null ? '' : 'median',
        sub: `p90 ${fmtDuration(d.recoveryTime.p90)}`,
        counts: `${plural(d.recoveryTime.count, 'failure')} restored; ${fmtInt(d.unrecoveredFailures)} not restored yet`,
      }),
      figureCard({
        figure: 'reworkRate', title: 'Rework rate', value: rework, band: '',
        noBandText: 'none defined for this figure',
        main: fmtPercent(rework), unit: '',
        sub: 'emergency or fixing deployments',
        counts: reworkCount === null ? 'no deployments in the period' : `${fmtInt(reworkCount)} of ${plural(d.deployments, 'deployment')}`,
      }),
    ];
    return h('section', { class: 'figures', 'aria-labelledby': 'figures-title' },
      h('h2', { id: 'figures-title', text: 'DORA figures' }),
      h('div', { class: 'card-grid' }, cards));
  }

  function pipelineSection(p) {
    const item = (label, value, detail) => h('div', { class: 'mini' },
      h('dt', { text: label }), h('dd', null, h('span', { class: 'mini-value', text: value }), detail ? h('span', { class: 'mini-detail', text: ` ${detail}` }) : null));
    return h('section', { class: 'pipeline', 'aria-labelledby': 'pipeline-title' },
      h('h2', { id: 'pipeline-title', text: 'Pipeline health' }),
      h('dl', { class: 'mini-grid' },
        item('Build success rate', fmtPercent(p.buildSuccessRate), `of ${plural(p.builds, 'build')}`),
        item('Build duration', fmtDuration(p.buildDuration.median), `median; p90 ${fmtDuration(p.buildDuration.p90)}`),
        item('Time to deploy', fmtDuration(p.timeToDeploy.median), `median, started to succeeded; p90 ${fmtDuration(p.timeToDeploy.p90)}`),
        item('Failed deployment attempts', fmtPercent(p.attemptFailureRate), `${fmtInt(p.failedAttempts)} of ${plural(p.deploymentAttempts, 'attempt')}`)));
  }

  // --- charts ---------------------------------------------------------------

  const CH = { w: 440, h: 210, left: 52, right: 14, top: 12, bottom: 28 };

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function chartFrame(title, summary, max, fmtAxis, points) {
    const svg = h('svg:svg', {
      viewBox: `0 0 ${CH.w} ${CH.h}`, class: 'chart', role: 'img', 'aria-label': `${title}. ${summary}`, focusable: 'false',
    });
    const plotH = CH.h - CH.top - CH.bottom;
    for (const frac of [0, 0.5, 1]) {
      const y = CH.top + plotH * (1 - frac);
      svg.appendChild(h('svg:line', { x1: CH.left, x2: CH.w - CH.right, y1: y, y2: y, class: frac === 0 ? 'axis' : 'grid' }));
      svg.appendChild(h('svg:text', { x: CH.left - 6, y: y + 4, 'text-anchor': 'end', class: 'tick', text: fmtAxis(max * frac) }));
    }
    if (points.length) {
      svg.appendChild(h('svg:text', { x: CH.left, y: CH.h - 8, 'text-anchor': 'start', class: 'tick', text: fmtDate(points[0].start) }));
      if (points.length > 1) {
        svg.appendChild(h('svg:text', { x: CH.w - CH.right, y: CH.h - 8, 'text-anchor': 'end', class: 'tick', text: fmtDate(points[points.length - 1].start) }));
      }
    }
    return svg;
  }

  function xOf(i, n) {
    const plotW = CH.w - CH.left - CH.right;
    return CH.left + plotW * ((i + 0.5) / Math.max(n, 1));
  }

  function yOf(v, max) {
    const plotH = CH.h - CH.top - CH.bottom;
    return CH.top + plotH * (1 - v / max);
  }

  function barChart(points, valueOf, title, summary, fmtAxis) {
    const vals = points.map(valueOf);
    const max = Math.max(4, niceMax(Math.max(0, ...vals.filter((v) => v !== null))));
    const svg = chartFrame(title, summary, max, fmtAxis, points);
    const plotW = CH.w - CH.left - CH.right;
    const bw = Math.max(1, (plotW / Math.max(points.length, 1)) * 0.7);
    points.forEach((p, i) => {
      const v = vals[i];
      if (v === null || v === undefined) return;
      const y = yOf(v, max);
      svg.appendChild(h('svg:rect', { x: xOf(i, points.length) - bw / 2, y, width: bw, height: Math.max(0, CH.h - CH.bottom - y), class: 'bar' }));
    });
    return svg;
  }

  function lineChart(points, valueOf, title, summary, fmtAxis, maxOf) {
    const vals = points.map(valueOf);
    const present = vals.filter((v) => v !== null && v !== undefined);
    const top = Math.max(0, ...present);
    const max = maxOf ? maxOf(top) : niceMax(top);
    const svg = chartFrame(title, summary, max, fmtAxis, points);
    let d = '';
    let pen = false;
    points.forEach((p, i) => {
      const v = vals[i];
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      const x = xOf(i, points.length);
      const y = yOf(v, max);
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
    });
    if (d) svg.appendChild(h('svg:path', { d: d.trim(), class: 'line' }));
    points.forEach((p, i) => {
      const v = vals[i];
      if (v === null || v === undefined) return;
      svg.appendChild(h('svg:circle', { cx: xOf(i, points.length), cy: yOf(v, max), r: 2.5, class: 'dot' }));
    });
    return svg;
  }

  function seriesSummary(points, valueOf, fmt, noun) {
    const vals = points.map(valueOf).filter((v) => v !== null && v !== undefined);
    if (!points.length) return 'No weeks in the period.';
    const range = `${points.length} weeks from ${fmtDate(points[0].start)} to ${fmtDate(points[points.length - 1].start)}`;
    if (!vals.length) return `${range}: no ${noun} in any week.`;
    const last = valueOf(points[points.length - 1]);
    return `${range}: lowest ${fmt(Math.min(...vals))}, highest ${fmt(Math.max(...vals))}, latest week ${last === null || last === undefined ? 'no data' : fmt(last)}.`;
  }

  /** The unit (seconds) a duration axis is drawn in, for its largest value. */
  function durationUnit(top) {
    if (top >= 2 * 86400) return { secs: 86400, name: 'd' };
    if (top >= 2 * 3600) return { secs: 3600, name: 'h' };
    return { secs: 60, name: 'min' };
  }

  /** A round axis top, in whole steps of the unit. */
  function durationMax(top) {
    const u = durationUnit(top);
    return niceMax(top / u.secs) * u.secs;
  }

  function durationAxis(top) {
    const u = durationUnit(top);
    return (v) => (v === 0 ? '0' : `${axisNum(v / u.secs)} ${u.name}`);
  }

  function axisNum(v) {
    return Number.isInteger(Math.round(v * 100) / 100) ? intFmt.format(Math.round(v)) : fmtNum(v);
  }

  function percentAxis(v) {
    return v === 0 ? '0' : `${axisNum(v * 100)} %`;
  }

  function trendSection(dora) {
    const pts = dora.trend || [];
    const section = h('section', { class: 'trends', 'aria-labelledby': 'trends-title' },
      h('h2', { id: 'trends-title', text: 'Weekly trend' }));
    if (!pts.length) {
      section.appendChild(h('p', { class: 'empty', text: 'No weekly figures for this period.' }));
      return section;
    }
    const ltTop = Math.max(0, ...pts.map((p) => p.leadTime.median).filter((v) => v !== null));
    const charts = [
      {
        id: 'chart-deployments', title: 'Deployments per week',
        svg: barChart(pts, (p) => p.deployments, 'Deployments per week',
          seriesSummary(pts, (p) => p.deployments, (v) => fmtInt(v), 'deployments'), (v) => fmtInt(v)),
      },
      {
        id: 'chart-leadtime', title: 'Lead time, weekly median',
        svg: lineChart(pts, (p) => p.leadTime.median, 'Lead time for changes, weekly median',
          seriesSummary(pts, (p) => p.leadTime.median, fmtDuration, 'lead time'), durationAxis(ltTop), durationMax),
      },
      {
        id: 'chart-cfr', title: 'Change fail rate per week',
        svg: lineChart(pts, (p) => p.changeFailRate, 'Change fail rate per week',
          seriesSummary(pts, (p) => p.changeFailRate, fmtPercent, 'deployments'), percentAxis, (top) => niceMax(Math.max(top, 0.05))),
      },
    ];
    section.appendChild(h('div', { class: 'chart-grid' }, charts.map((c) => h('figure', { class: 'card chart-card', id: c.id },
      h('figcaption', { class: 'chart-title', text: c.title }), c.svg))));
    section.appendChild(h('p', { class: 'hint', text: 'Weeks run Monday to Sunday (UTC); the first and last may be partial. Gaps in a line are weeks without data.' }));

    const table = h('table', { class: 'data-table' },
      h('caption', { text: 'Weekly figures' }),
      h('thead', null, h('tr', null,
        ['Week from', 'to', 'Deployments', 'Per day', 'Lead time (median)', 'Lead time (p90)', 'Change fail rate', 'Failed'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', null, pts.map((p) => h('tr', null,
        h('td', null, timeEl(p.start)),
        h('td', null, timeEl(p.end)),
        h('td', { class: 'num', text: fmtInt(p.deployments) }),
        h('td', { class: 'num', text: fmtNum(p.deploymentFrequency) }),
        h('td', { class: 'num', text: fmtDuration(p.leadTime.median) }),
        h('td', { class: 'num', text: fmtDuration(p.leadTime.p90) }),
        h('td', { class: 'num', text: fmtPercent(p.changeFailRate) }),
        h('td', { class: 'num', text: fmtInt(p.failedDeployments) })))));
    section.appendChild(h('details', { class: 'table-details' },
      h('summary', { text: 'Show the weekly figures as a table' }),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Weekly figures table' }, table)));
    return section;
  }

  // --- deployments list -------------------------------------------------------

  function outcomeOf(d) {
    if (d.rolledBack) return { key: 'rolledback', text: 'Rolled back' };
    if (d.failed) return { key: 'failed', text: 'Failed (incident or fix)' };
    return { key: 'succeeded', text: 'Succeeded' };
  }

  function outcomeCell(d) {
    const o = outcomeOf(d);
    const notes = [];
    if (d.failed) notes.push(d.recoveryTime === null || d.recoveryTime === undefined ? 'not restored yet' : `restored in ${fmtDuration(d.recoveryTime)}`);
    if (d.emergency) notes.push('emergency');
    if (d.fixes) notes.push(`fixes ${d.fixes}`);
    return h('td', { dataset: { outcome: o.key } },
      h('span', { class: `badge outcome-${o.key}`, text: o.text }),
      notes.length ? h('span', { class: 'cell-note', text: notes.join(' · ') }) : null);
  }

  function deploymentHref(id) {
    return `#/deployment/${encodeURIComponent(id)}`;
  }

  function deploymentsSection(list, dora) {
    const section = h('section', { class: 'deployments', 'aria-labelledby': 'deployments-title' },
      h('h2', { id: 'deployments-title', text: `Recent ${dora.environment} deployments` }));
    if (!list) {
      section.appendChild(h('p', { class: 'empty', text: 'The deployment list could not be loaded.' }));
      return section;
    }
    if (!list.length) {
      section.appendChild(h('p', { class: 'empty', text: 'No deployments in this scope and period.' }));
      return section;
    }
    const table = h('table', { class: 'data-table', id: 'deployments-table' },
      h('caption', { text: `${list.length === 100 ? 'The 100 most recent' : plural(list.length, 'deployment')}, newest first` }),
      h('thead', null, h('tr', null,
        ['Time (UTC)', 'Service', 'Version', 'Lead time (median)', 'Outcome', 'Deployment'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', null, list.map((d) => h('tr', { dataset: { deploymentId: d.deploymentId } },
        h('td', { class: 'nowrap' }, timeEl(d.occurredAt)),
        h('td', { text: d.service }),
        h('td', { class: 'mono', text: d.version }),
        h('td', { class: 'num', dataset: { value: machine(d.leadTime.median) } },
          fmtDuration(d.leadTime.median),
          d.leadTime.count ? h('span', { class: 'cell-note', text: plural(d.leadTime.count, 'commit') }) : null),
        outcomeCell(d),
        h('td', null, h('a', { href: deploymentHref(d.deploymentId), text: d.deploymentId, 'aria-label': `Deployment ${d.deploymentId}: ${d.service} ${d.version}, evidence` }))))));
    section.appendChild(h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'deployments-title' }, table));
    return section;
  }

  // ---------------------------------------------------------------------------
  // Audit view
  // ---------------------------------------------------------------------------

  const audit = {
    form: { service: '', actor: '', type: '', stream: '', environment: '', from: '', to: '', first: '50' },
    stack: [],
    after: null,
    page: 0,
    seq: 0,
  };

  function renderAudit(gen) {
    const f = audit.form;
    const view = h('section', { class: 'view', id: 'audit-view', 'aria-labelledby': 'audit-title', dataset: { loaded: 'false' } });
    const input = (id, label, value, type, extra) => h('div', { class: 'field' },
      h('label', { for: id, text: label }),
      h('input', Object.assign({ id, name: id, type: type || 'text', autocomplete: 'off', value }, extra || {})));
    const typeSelect = h('select', { id: 'a-type', name: 'a-type' },
      h('option', { value: '', text: 'Any type' }),
      EVENT_TYPES.map((t) => h('option', { value: t, text: t })));
    typeSelect.value = f.type;
    const pageSize = h('select', { id: 'a-first', name: 'a-first' },
      ['25', '50', '100', '200', '500'].map((n) => h('option', { value: n, text: n })));
    pageSize.value = f.first;

    const status = statusRegion('audit-status');
    const form = h('form', { id: 'audit-form', class: 'panel filter-form', 'aria-label': 'Event search' },
      h('div', { class: 'field-row' },
        input('a-service', 'Service', f.service, 'text', { list: 'services-list' }),
        input('a-actor', 'Actor', f.actor),
        h('div', { class: 'field' }, h('label', { for: 'a-type', text: 'Type' }), typeSelect),
        input('a-stream', 'Stream', f.stream, 'text', { placeholder: 'e.g. deploy/checkout/production' }),
        input('a-environment', 'Environment', f.environment)),
      h('div', { class: 'field-row' },
        input('a-from', 'Occurred from (UTC)', f.from, 'date'),
        input('a-to', 'Occurred before (UTC, not included)', f.to, 'date'),
        h('div', { class: 'field' }, h('label', { for: 'a-first', text: 'Events per page' }), pageSize)),
      h('div', { class: 'actions' },
        h('button', { id: 'audit-search', type: 'submit', class: 'button', text: 'Search' }),
        h('button', { id: 'audit-reset', type: 'button', class: 'button secondary', text: 'Clear filters' })),
      h('datalist', { id: 'services-list' }, Array.from(delivery.services).sort().map((s) => h('option', { value: s }))));

    const results = h('div', { id: 'audit-results' });
    const pager = h('div', { class: 'pager' });
    const prev = h('button', { id: 'prev-page', type: 'button', class: 'button secondary', text: '← Previous', disabled: true });
    const next = h('button', { id: 'next-page', type: 'button', class: 'button secondary', text: 'Next →', disabled: true });
    const range = h('p', { id: 'audit-range', class: 'range', text: '' });
    append(pager, [prev, range, next]);

    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const val = (id) => $(id).value.trim();
      const nf = {
        service: val('a-service'), actor: val('a-actor'), type: typeSelect.value, stream: val('a-stream'),
        environment: val('a-environment'), from: $('a-from').value, to: $('a-to').value, first: pageSize.value,
      };
      $('a-from').removeAttribute('aria-invalid');
      if (nf.from && nf.to && nf.from >= nf.to) {
        $('a-from').setAttribute('aria-invalid', 'true');
        setStatus(status, 'error', '“Occurred from” must be before “Occurred before”.');
        $('a-from').focus();
        return;
      }
      audit.form = nf;
      audit.stack = [];
      audit.after = null;
      audit.page = 0;
      loadAudit(gen, view, status, results, prev, next, range);
    });
    form.querySelector('#audit-reset').addEventListener('click', () => {
      for (const id of ['a-service', 'a-actor', 'a-stream', 'a-environment', 'a-from', 'a-to']) $(id).value = '';
      typeSelect.value = '';
      $('a-service').focus();
    });
    next.addEventListener('click', () => {
      if (!audit.nextCursor) return;
      audit.stack.push(audit.after);
      audit.after = audit.nextCursor;
      audit.page += 1;
      loadAudit(gen, view, status, results, prev, next, range, 'next');
    });
    prev.addEventListener('click', () => {
      if (!audit.stack.length) return;
      audit.after = audit.stack.pop();
      audit.page = Math.max(0, audit.page - 1);
      loadAudit(gen, view, status, results, prev, next, range, 'prev');
    });

    const verification = h('section', { id: 'verification', class: 'panel verification', 'aria-labelledby': 'verification-title' },
      h('h2', { id: 'verification-title', text: 'Ledger verification' }));
    const exportPanel = renderExportPanel();

    append(view, [
      h('div', { class: 'view-head' },
        h('h1', { id: 'audit-title', text: 'Audit' }),
        h('p', { class: 'lede', text: 'Search the ledger’s events in their global order, check its signed checkpoint, and export it for offline verification.' })),
      form,
      status,
      h('section', { class: 'results', 'aria-labelledby': 'events-title' },
        h('h2', { id: 'events-title', text: 'Events' }),
        pager,
        results),
      h('div', { class: 'two-col' }, verification, exportPanel),
    ]);

    loadAudit(gen, view, status, results, prev, next, range);
    loadCheckpoint(gen, verification);
    return view;
  }

  function auditFilter(f) {
    const filter = {};
    if (f.service) filter.service = f.service;
    if (f.actor) filter.actor = f.actor;
    if (f.type) filter.types = [f.type];
    if (f.stream) filter.stream = f.stream;
    if (f.environment) filter.environment = f.environment;
    if (f.from) filter.from = `${f.from}T00:00:00Z`;
    if (f.to) filter.to = `${f.to}T00:00:00Z`;
    return filter;
  }

  async function loadAudit(gen, view, status, results, prev, next, range, via) {
    const mySeq = ++audit.seq;
    const first = Number(audit.form.first) || 50;
    view.dataset.loaded = 'false';
    view.setAttribute('aria-busy', 'true');
    prev.disabled = true;
    next.disabled = true;
    results.classList.add('is-stale');
    setStatus(status, 'loading', 'Searching the ledger…');
    let r;
    try {
      r = await gql(Q_AUDIT, { filter: auditFilter(audit.form), first, after: audit.after });
    } catch (e) {
      if (e instanceof AuthError) return;
      if (!isCurrent(gen) || mySeq !== audit.seq) return;
      view.dataset.loaded = 'error';
      view.removeAttribute('aria-busy');
      results.classList.remove('is-stale');
      setStatus(status, 'error', `The search failed: ${e.message}`);
      prev.disabled = audit.stack.length === 0;
      return;
    }
    if (!isCurrent(gen) || mySeq !== audit.seq) return;
    view.removeAttribute('aria-busy');
    results.classList.remove('is-stale');
    const conn = r.data && r.data.events;
    if (!conn) {
      view.dataset.loaded = 'error';
      showGraphQLErrors(status, r);
      prev.disabled = audit.stack.length === 0;
      clear(results);
      range.textContent = '';
      return;
    }
    audit.nextCursor = conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null;
    const nodes = conn.edges.map((e) => e.node);
    const start = audit.page * first + 1;
    const end = audit.page * first + nodes.length;
    const total = conn.totalCount;
    const rangeText = nodes.length
      ? `events ${fmtInt(start)}–${fmtInt(end)}${total === null || total === undefined ? '' : ` of ${fmtInt(total)}`}`
      : (audit.page ? 'no more events' : 'no events match');
    range.textContent = rangeText;
    clear(results);
    results.appendChild(eventsTable(nodes));
    prev.disabled = audit.stack.length === 0;
    next.disabled = !audit.nextCursor;
    view.dataset.loaded = 'true';
    if (r.errors.length) showGraphQLErrors(status, r);
    else setStatus(status, 'ok', nodes.length ? `Showing ${rangeText}.` : 'No events match these filters.');
    if (via === 'next' && next.disabled) prev.focus();
    if (via === 'prev' && prev.disabled) next.focus();
  }

  function serviceOf(ev) {
    const d = ev.data || {};
    if (typeof d.service === 'string') return d.service;
    const rs = get(d, 'request', 'resource', 'service');
    if (typeof rs === 'string' && rs) return rs;
    return '';
  }

  function eventsTable(nodes) {
    if (!nodes.length) return h('p', { class: 'empty', text: 'No events match these filters.' });
    const tbody = h('tbody');
    for (const ev of nodes) {
      const detailId = `event-data-${ev.seq}`;
      const btn = h('button', { type: 'button', class: 'button small secondary', 'aria-expanded': 'false', 'aria-controls': detailId, text: 'Show data', 'aria-label': `Show the data of event ${ev.seq}` });
      const svc = serviceOf(ev);
      const row = h('tr', { dataset: { seq: ev.seq } },
        h('td', { class: 'num mono', text: String(ev.seq) }),
        h('td', { class: 'nowrap' }, timeEl(ev.occurredAt, true)),
        h('td', { class: 'mono', text: ev.type }),
        h('td', { class: 'nowrap', text: ev.actor }),
        h('td', null, svc ? h('span', { class: 'svc', text: svc }) : null, h('span', { class: 'cell-note mono', text: ev.stream })),
        h('td', { text: ev.recordedBy }),
        h('td', null, btn));
      const detail = h('tr', { id: detailId, class: 'detail-row', hidden: true },
        h('td', { colspan: '7' }, eventDetail(ev)));
      btn.addEventListener('click', () => {
        const open = detail.hidden;
        detail.hidden = !open;
        btn.setAttribute('aria-expanded', String(open));
        btn.textContent = open ? 'Hide data' : 'Show data';
        btn.setAttribute('aria-label', `${open ? 'Hide' : 'Show'} the data of event ${ev.seq}`);
      });
      tbody.appendChild(row);
      tbody.appendChild(detail);
    }
    const table = h('table', { class: 'data-table', id: 'audit-table' },
      h('caption', { class: 'visually-hidden', text: 'Events, in seq order' }),
      h('thead', null, h('tr', null,
        ['Seq', 'Occurred at (UTC)', 'Type', 'Actor', 'Service / stream', 'Recorded by', 'Data'].map((t) => h('th', { scope: 'col', text: t })))),
      tbody);
    return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Events table' }, table);
  }

  function eventDetail(ev) {
    const meta = [
      ['id', ev.id], ['stream', ev.stream], ['stream version', ev.streamVersion],
      ['recorded at', ev.recordedAt ? `${fmtTimeSec(ev.recordedAt)} UTC` : ''], ['source', ev.source], ['leaf hash', ev.leafHash],
    ].filter(([, v]) => v !== null && v !== undefined && v !== '');
    return h('div', { class: 'event-detail' },
      h('p', { class: 'summary-line', text: summarize(ev) }),
      h('dl', { class: 'meta' }, meta.map(([k, v]) => [h('dt', { text: k }), h('dd', { class: 'mono', text: String(v) })])),
      h('p', { class: 'json-label', text: 'data' }),
      h('pre', { class: 'json', tabindex: '0', text: JSON.stringify(ev.data, null, 2) }),
      ev.links && !(typeof ev.links === 'object' && Object.keys(ev.links).length === 0)
        ? [h('p', { class: 'json-label', text: 'links' }), h('pre', { class: 'json', tabindex: '0', text: JSON.stringify(ev.links, null, 2) })]
        : null);
  }

  // --- checkpoint ---------------------------------------------------------------

  async function loadCheckpoint(gen, panel) {
    const status = h('div', { class: 'status', role: 'status', 'aria-live': 'polite', id: 'verification-status' });
    panel.appendChild(status);
    setStatus(status, 'loading', 'Loading the latest signed checkpoint…');
    let r;
    try {
      r = await gql(Q_CHECKPOINT, {});
    } catch (e) {
      if (e instanceof AuthError || !isCurrent(gen)) return;
      setStatus(status, 'error', `The checkpoint could not be loaded: ${e.message}`);
      return;
    }
    if (!isCurrent(gen)) return;
    const cp = r.data && r.data.checkpoint;
    if (!cp) {
      if (isForbidden(r)) {
        panel.dataset.forbidden = 'true';
        setStatus(status, 'info', 'Not shown: your token\'s role cannot see checkpoints (auditor or admin can).');
      } else {
        showGraphQLErrors(status, r);
      }
      return;
    }
    panel.dataset.size = String(cp.size);
    panel.dataset.intact = String(cp.intact);
    clear(status);
    status.className = 'status';
    const intact = h('span', { class: `badge ${cp.intact ? 'outcome-succeeded' : 'outcome-failed'}`, text: cp.intact ? 'Passed' : 'FAILED' });
    const copy = (text, label) => h('button', {
      type: 'button', class: 'button small secondary', text: 'Copy', 'aria-label': `Copy the ${label}`,
      on: {
        click: async (e) => {
          try {
            await navigator.clipboard.writeText(text);
            e.target.textContent = 'Copied';
          } catch (err) {
            e.target.textContent = 'Copy failed';
          }
          setTimeout(() => { e.target.textContent = 'Copy'; }, 2000);
        },
      },
    });
    append(panel, [
      h('dl', { class: 'facts' },
        h('dt', { text: 'Origin' }), h('dd', { class: 'mono', text: cp.origin }),
        h('dt', { text: 'Size' }), h('dd', { text: `${plural(cp.size, 'event')} covered` }),
        h('dt', { text: 'Root hash' }), h('dd', { class: 'mono break', text: cp.rootHash }),
        h('dt', { text: 'Start-up integrity check' }), h('dd', null, intact,
          cp.intact ? ' the stored history matched the last signed checkpoint' : h('span', { class: 'problem', text: ` ${cp.integrityProblem || 'the stored history does not match'}` })),
        h('dt', { text: 'Projected seq' }), h('dd', { text: cp.projectedSeq === null || cp.projectedSeq === undefined ? 'none yet' : `${fmtInt(cp.projectedSeq)} (the last event the figures include)` })),
      h('h3', { text: 'Signed note' }),
      h('pre', { class: 'note', id: 'checkpoint-note', text: cp.note }),
      h('h3', null, 'Verifier key ', copy(cp.verifierKey, 'verifier key')),
      h('pre', { class: 'note', id: 'verifier-key', text: cp.verifierKey }),
      h('p', { class: 'hint' }, 'Keep the verifier key in a file (', h('code', { text: 'shiplog.pub' }),
        ') to check an export, or that the log only grew since a kept checkpoint: ',
        h('code', { text: 'shiplog verify --since shiplog.checkpoint --key shiplog.pub' }), '.'),
    ]);
    if (!cp.intact) {
      setStatus(status, 'error', `The start-up integrity check failed: ${cp.integrityProblem || 'the stored history was altered'}.`);
    }
  }

  // --- export -------------------------------------------------------------------

  let exportAbort = null;

  function renderExportPanel() {
    const status = h('div', { id: 'export-status', class: 'status', role: 'status', 'aria-live': 'polite' });
    const btn = h('button', { id: 'export-download', type: 'button', class: 'button', text: 'Download export' });
    const cancel = h('button', { id: 'export-cancel', type: 'button', class: 'button secondary', text: 'Cancel export', hidden: true });
    const cpBtn = h('button', { id: 'checkpoint-download', type: 'button', class: 'button secondary', text: 'Download checkpoint' });
    const keyBtn = h('button', { id: 'key-download', type: 'button', class: 'button secondary', text: 'Download verifier key' });
    const withCp = h('input', { id: 'export-with-checkpoint', type: 'checkbox', 'aria-describedby': 'export-with-checkpoint-hint' });
    btn.addEventListener('click', () => runExport(btn, cancel, status, withCp.checked));
    cancel.addEventListener('click', () => {
      if (exportAbort) exportAbort.abort();
    });
    cpBtn.addEventListener('click', () => downloadText('/v1/checkpoint', 'shiplog.checkpoint', cpBtn, status, 'checkpoint'));
    keyBtn.addEventListener('click', () => downloadText('/v1/checkpoint/key', 'shiplog.pub', keyBtn, status, 'verifier key'));
    return h('section', { class: 'panel export', 'aria-labelledby': 'export-title' },
      h('h2', { id: 'export-title', text: 'Export' }),
      h('p', { text: 'The whole ledger as NDJSON, one event per line in seq order (needs an auditor or admin token). Keep the checkpoint and the verifier key beside it.' }),
      h('div', { class: 'check' },
        withCp,
        h('label', { for: 'export-with-checkpoint', text: 'End the export with its signed checkpoint line, as shiplog export does' })),
      h('p', { id: 'export-with-checkpoint-hint', class: 'hint' },
        'Then the file stops at the checkpoint’s size and verifies offline with ',
        h('code', { text: 'shiplog verify shiplog-export.ndjson --key shiplog.pub' }), '.'),
      h('div', { class: 'actions' }, btn, cancel, cpBtn, keyBtn),
      status);
  }

  function downloadBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  function forbiddenText(what) {
    return `Your token's role cannot ${what} (auditor or admin can).`;
  }

  async function downloadText(url, name, btn, status, what) {
    btn.disabled = true;
    setStatus(status, 'loading', `Fetching the ${what}…`);
    try {
      const res = await apiFetch(url, { headers: { Accept: 'text/plain' } });
      if (res.status === 403) {
        const err = await readError(res);
        setStatus(status, 'error', `${forbiddenText(`download the ${what}`)} The server said: ${err.message}`);
        return;
      }
      if (!res.ok) {
        const err = await readError(res);
        setStatus(status, 'error', `The ${what} could not be fetched: ${err.message} (${err.code})`);
        return;
      }
      const text = await res.text();
      downloadBlob(new Blob([text], { type: 'text/plain' }), name);
      setStatus(status, 'ok', `Downloaded the ${what} as ${name}.`);
    } catch (e) {
      if (!(e instanceof AuthError)) setStatus(status, 'error', `The ${what} could not be fetched: ${e.message}`);
    } finally {
      btn.disabled = false;
    }
  }

  async function runExport(btn, cancel, status, withCheckpoint) {
    if (exportAbort) return;
    const ctrl = new AbortController();
    exportAbort = ctrl;
    btn.disabled = true;
    cancel.hidden = false;
    const chunks = [];
    let count = 0;
    let after = -1;
    let note = null;
    let size = Infinity;
    setStatus(status, 'loading', 'Starting the export…');
    try {
      if (withCheckpoint) {
        // As `shiplog export`: the checkpoint first, then the events it covers.
        const res = await apiFetch('/v1/checkpoint', { headers: { Accept: 'text/plain' }, signal: ctrl.signal });
        if (res.status === 403) {
          const err = await readError(res);
          setStatus(status, 'error', `${forbiddenText('export the ledger with its checkpoint')} The server said: ${err.message}`);
          return;
        }
        if (!res.ok) {
          const err = await readError(res);
          setStatus(status, 'error', `The checkpoint could not be fetched: ${err.message} (${err.code})`);
          return;
        }
        note = await res.text();
        size = Number(note.split('\n')[1]);
        if (!Number.isInteger(size) || size < 0) {
          setStatus(status, 'error', 'The checkpoint note has no size on its second line.');
          return;
        }
      }
      while (after + 1 < size) {
        const res = await apiFetch(`/v1/events?after=${after}&limit=10000`, {
          headers: { Accept: 'application/x-ndjson' },
          signal: ctrl.signal,
        });
        if (res.status === 403) {
          const err = await readError(res);
          setStatus(status, 'error', `${forbiddenText('export the ledger')} The server said: ${err.message}`);
          return;
        }
        if (!res.ok) {
          const err = await readError(res);
          setStatus(status, 'error', `The export stopped after ${fmtInt(count)} events: ${err.message} (${err.code})`);
          return;
        }
        const text = await res.text();
        if (!text.trim()) break;
        let lines = text.split('\n').filter((l) => l.trim() !== '');
        if (note !== null) {
          // Only the events the checkpoint covers (seq below its size).
          const keep = [];
          for (const l of lines) {
            let seq;
            try {
              seq = JSON.parse(l).seq;
            } catch (e) {
              seq = undefined;
            }
            if (typeof seq === 'number' && seq >= size) break;
            keep.push(l);
          }
          if (keep.length < lines.length) {
            if (keep.length) {
              chunks.push(`${keep.join('\n')}\n`);
              count += keep.length;
            }
            break;
          }
          lines = keep;
        }
        let last;
        try {
          last = JSON.parse(lines[lines.length - 1]).seq;
        } catch (e) {
          setStatus(status, 'error', `The export stopped after ${fmtInt(count)} events: a line was not JSON.`);
          return;
        }
        if (typeof last !== 'number' || last <= after) {
          setStatus(status, 'error', `The export stopped after ${fmtInt(count)} events: the server did not advance past seq ${after}.`);
          return;
        }
        chunks.push(text.endsWith('\n') ? text : `${text}\n`);
        count += lines.length;
        after = last;
        setStatus(status, 'loading', `${fmtInt(count)} events…`);
      }
      if (note !== null) {
        chunks.push(`${JSON.stringify({ checkpoint: note })}\n`);
        if (count !== size) {
          setStatus(status, 'warning', `The server sent ${fmtInt(count)} events below its checkpoint’s size ${fmtInt(size)}; shiplog verify will say which are missing.`);
        }
      }
      downloadBlob(new Blob(chunks, { type: 'application/x-ndjson' }), 'shiplog-export.ndjson');
      const done = `Exported ${plural(count, 'event')} to shiplog-export.ndjson${note !== null ? ', with the signed checkpoint line' : ''}.`;
      if (note === null || count === size) setStatus(status, 'ok', done);
    } catch (e) {
      if (e instanceof AuthError) return;
      if (e.name === 'AbortError') setStatus(status, 'info', `Export cancelled after ${fmtInt(count)} events.`);
      else setStatus(status, 'error', `The export stopped after ${fmtInt(count)} events: ${e.message}`);
    } finally {
      exportAbort = null;
      btn.disabled = false;
      cancel.hidden = true;
    }
  }

  // ---------------------------------------------------------------------------
  // Event summaries (one line, for people)
  // ---------------------------------------------------------------------------

  function summarize(ev) {
    const d = ev.data || {};
    const t = ev.type;
    const sha = (s) => (s ? String(s).slice(0, 10) : '?');
    const parts = (...xs) => xs.filter((x) => x !== null && x !== undefined && x !== '').join(' ');
    try {
      switch (t) {
        case 'commit.pushed':
          return parts(`${str(d.repo)} ${sha(d.sha)} on ${str(d.branch)} by ${str(d.author)}`, d.message ? `: ${str(d.message)}` : '');
        case 'change.opened':
          return parts(`${str(d.repo)} #${str(d.number)} opened by ${str(d.author)}`, d.title ? `: ${str(d.title)}` : '');
        case 'change.reviewed':
          return `${str(d.repo)} #${str(d.number)} ${str(d.state).replace(/_/g, ' ')} by ${str(d.reviewer)}`;
        case 'change.merged':
          return `${str(d.repo)} #${str(d.number)} merged by ${str(d.mergedBy)} as ${sha(d.mergeSha)} (${plural((d.commits || []).length, 'commit')})`;
        case 'build.started':
          return `${str(d.pipeline)} run ${str(d.runId)} started on ${sha(d.sha)}`;
        case 'build.finished':
          return parts(`${str(d.pipeline)} run ${str(d.runId)}: ${str(d.outcome)}`, d.artifact ? `→ ${shortHash(d.artifact)}` : '');
        case 'tests.finished':
          return `${str(d.suite)} (${str(d.kind)}): ${str(d.outcome)}, ${fmtInt(d.passed)} passed, ${fmtInt(d.failed)} failed, ${fmtInt(d.skipped)} skipped`;
        case 'scan.finished':
          return `${str(d.scanner)} (${str(d.kind)}) on ${shortHash(d.artifact)}: ${fmtInt(d.critical)} critical, ${fmtInt(d.high)} high, ${fmtInt(d.medium)} medium, ${fmtInt(d.low)} low`;
        case 'artifact.published':
          return `${str(d.service)} ${str(d.version)} as ${shortHash(d.artifact)} (${plural((d.commits || []).length, 'commit')})`;
        case 'approval.granted':
        case 'approval.revoked': {
          const what = [d.service, d.environment, d.artifact ? shortHash(d.artifact) : null, d.changeId].filter(Boolean).map(str).join(' ');
          return parts(`${str(d.approver)} ${t === 'approval.granted' ? 'approved' : 'revoked approval of'} ${str(d.scope)}`, what ? `for ${what}` : '', d.comment ? `: ${str(d.comment)}` : '');
        }
        case 'deployment.started':
        case 'deployment.succeeded':
        case 'deployment.failed':
          return parts(`${str(d.service)} ${str(d.version)} to ${str(d.environment)}: ${t.split('.')[1]}`, `(${str(d.deploymentId)})`,
            d.emergency ? '· emergency' : '', d.fixes ? `· fixes ${str(d.fixes)}` : '');
        case 'deployment.rolledback':
          return parts(`${str(d.service)} in ${str(d.environment)} rolled back from ${str(d.fromVersion)} to ${str(d.toVersion)}`, `(${str(d.deploymentId)})`, d.reason ? `: ${str(d.reason)}` : '');
        case 'canary.analyzed':
          return `${str(d.deploymentId)}: ${str(d.verdict)}, error rate ${fmtPercent(d.errorRate)}, p95 ${fmtNum(d.p95LatencyMs)} ms`;
        case 'infra.planned':
        case 'infra.applied':
          return `${str(d.changeId)} (${str(d.tool)}) in ${str(d.environment)}: +${fmtInt(d.add)} ~${fmtInt(d.change)} -${fmtInt(d.destroy)}, ${str(d.outcome)}`;
        case 'migration.applied':
          return `${str(d.service)} in ${str(d.environment)}: ${str(d.name)} (${str(d.phase)})`;
        case 'incident.opened':
          return parts(`${str(d.incidentId)} (${str(d.severity)}) opened on ${str(d.service)} in ${str(d.environment)}`, d.causedBy ? `, caused by ${str(d.causedBy)}` : '');
        case 'incident.resolved':
          return parts(`${str(d.incidentId)} resolved on ${str(d.service)} in ${str(d.environment)}`, d.causedBy ? `, caused by ${str(d.causedBy)}` : '');
        case 'flag.changed':
          return `${str(d.flag)} in ${str(d.environment)}: ${JSON.stringify(d.from)} → ${JSON.stringify(d.to)}`;
        case 'cdevent.received':
          return parts(`${str(d.cdeventType)} ${str(d.subject)}`, d.note ? `: ${str(d.note)}` : '');
        case 'decision.recorded': {
          const req = d.request || {};
          const reasons = Array.isArray(d.reasons) ? d.reasons : [];
          const denied = reasons.filter((x) => x && x.effect === 'forbid').map((x) => x.policy);
          return parts(`${str(d.decision)}: ${str(req.action)} by ${str(req.principal)}`,
            req.resource ? `on ${Object.values(req.resource).map((v) => (String(v).startsWith('sha256:') ? shortHash(v) : str(v))).join(' ')}` : '',
            denied.length ? `(${denied.join(', ')})` : '');
        }
        case 'policy.activated':
          return `${str(d.set || 'gates')} policy set ${shortHash(d.policySetHash)} went live (${plural((d.files || []).length, 'file')})`;
        case 'token.created':
        case 'token.revoked':
          return `token ${str(d.name)} (${str(d.role)}) ${t === 'token.created' ? 'created' : 'revoked'}`;
        default: {
          const j = JSON.stringify(d);
          return j.length > 160 ? `${j.slice(0, 160)}…` : j;
        }
      }
    } catch (e) {
      return JSON.stringify(d).slice(0, 160);
    }
  }

  // ---------------------------------------------------------------------------
  // Deployment view
  // ---------------------------------------------------------------------------

  const EVIDENCE_SECTIONS = [
    ['commits', 'Commits'],
    ['changes', 'Changes and reviews'],
    ['builds', 'Builds'],
    ['tests', 'Tests'],
    ['scans', 'Security scans'],
    ['artifacts', 'Artifacts'],
    ['approvals', 'Approvals'],
    ['decisions', 'Gate decisions'],
    ['deployments', 'Deployments'],
    ['canaries', 'Canary analyses'],
    ['rollbacks', 'Rollbacks'],
    ['incidents', 'Incidents'],
  ];
  const SECTION_PREVIEW = 15;

  function renderDeployment(gen, id) {
    const view = h('section', { class: 'view', id: 'deployment-view', 'aria-labelledby': 'deployment-title', dataset: { loaded: 'false' } });
    const status = statusRegion('deployment-status');
    const body = h('div', { id: 'deployment-body' });
    append(view, [
      h('p', { class: 'crumbs' }, h('a', { href: '#/delivery', text: '← Delivery' })),
      h('div', { class: 'view-head' },
        h('h1', { id: 'deployment-title' }, 'Deployment ', h('span', { class: 'mono', text: id || '(none)' }))),
      status,
      body,
    ]);
    if (!id) {
      setStatus(status, 'error', 'No deployment id in the address: use #/deployment/<id>.');
      return view;
    }
    loadDeployment(gen, id, view, status, body);
    return view;
  }

  async function loadDeployment(gen, id, view, status, body) {
    setStatus(status, 'loading', 'Loading the deployment and its evidence…');
    view.setAttribute('aria-busy', 'true');
    let r;
    try {
      r = await gql(Q_DEPLOYMENT, { id });
    } catch (e) {
      if (e instanceof AuthError || !isCurrent(gen)) return;
      view.removeAttribute('aria-busy');
      view.dataset.loaded = 'error';
      setStatus(status, 'error', `The deployment could not be loaded: ${e.message}`);
      return;
    }
    if (!isCurrent(gen)) return;
    view.removeAttribute('aria-busy');
    if (!r.data) {
      view.dataset.loaded = 'error';
      showGraphQLErrors(status, r);
      return;
    }
    const dep = r.data.deployment;
    if (!dep) {
      view.dataset.loaded = 'true';
      view.dataset.notFound = 'true';
      setStatus(status, 'error', `No deployment with the id “${id}” is recorded in the ledger.`);
      body.appendChild(h('p', null, 'Check the id, or find the deployment in the ',
        h('a', { href: '#/delivery', text: 'recent deployments' }), ' or with the ', h('a', { href: '#/audit', text: 'audit search' }), '.'));
      return;
    }
    clear(body);
    body.appendChild(deploymentFacts(dep));
    const ev = dep.evidence || {};
    const total = EVIDENCE_SECTIONS.reduce((n, [k]) => n + (ev[k] ? ev[k].length : 0), 0);
    body.appendChild(h('h2', { class: 'evidence-title', text: `Chain of evidence (${plural(total, 'event')})` }));
    body.appendChild(h('p', { class: 'hint', text: 'Each section in time order; each item gives its seq, when it happened (UTC), its type and who did it.' }));
    body.appendChild(h('nav', { class: 'toc', 'aria-label': 'Evidence sections' },
      h('ul', null, EVIDENCE_SECTIONS.map(([k, title]) => h('li', null,
        h('a', { href: `#ev-${k}`, on: { click: (e) => { e.preventDefault(); const t = $(`ev-${k}`); if (t) { t.focus(); t.scrollIntoView({ block: 'start' }); } } } },
          `${title} (${fmtInt(ev[k] ? ev[k].length : 0)})`))))));
    for (const [key, title] of EVIDENCE_SECTIONS) {
      body.appendChild(evidenceSection(key, title, ev[key] || []));
    }
    view.dataset.loaded = 'true';
    if (r.errors.length) showGraphQLErrors(status, r);
    else setStatus(status, 'ok', `Loaded ${dep.deploymentId} and ${plural(total, 'event')} of evidence.`);
  }

  function deploymentFacts(dep) {
    const s = dep.summary;
    const incidents = get(dep, 'evidence', 'incidents') || [];
    const caused = incidents.some((e) => e.type === 'incident.opened' && get(e, 'data', 'causedBy') === dep.deploymentId);
    if (!s) {
      return h('section', { class: 'panel facts-panel', 'aria-labelledby': 'facts-title' },
        h('h2', { id: 'facts-title', text: 'Facts' }),
        h('p', { text: 'This deployment never succeeded (it was only started, or it failed), so it counts in no DORA figure. Its evidence follows.' }));
    }
    const o = outcomeOf(s);
    if (o.key === 'failed' && caused) o.text = 'Caused an incident';
    const rows = [
      ['Service', s.service],
      ['Environment', s.environment],
      ['Version', s.version],
      ['Artifact', s.artifact, 'mono break'],
      ['Succeeded at', fmtTime(s.occurredAt)],
      ['Seq', String(s.seq), 'mono'],
      ['Outcome', h('span', null, h('span', { class: `badge outcome-${o.key}`, text: o.text }),
        s.failed ? ` ${s.recoveryTime === null || s.recoveryTime === undefined ? 'not restored yet' : `restored in ${fmtDuration(s.recoveryTime)}`}` : '')],
      ['Failed (DORA definition)', s.failed
        ? `yes: ${[s.rolledBack ? 'rolled back' : null, caused ? 'named as an incident\'s cause' : null].filter(Boolean).join(', ') || 'an incident followed it, or a later deployment fixes it'}`
        : 'no'],
      ['Rolled back', s.rolledBack ? 'yes' : 'no'],
      ['Emergency', s.emergency ? 'yes' : 'no'],
      ['Fixes', s.fixes ? (/-prod-|-stg-/.test(s.fixes) ? h('a', { href: deploymentHref(s.fixes), text: s.fixes }) : s.fixes) : 'nothing'],
      ['Lead time', s.leadTime.count
        ? `median ${fmtDuration(s.leadTime.median)}, p90 ${fmtDuration(s.leadTime.p90)}, over ${plural(s.leadTime.count, 'commit')} first reaching ${s.environment} here`
        : 'no commit first reached the environment here'],
      ['Commits', s.commits === null || s.commits === undefined ? 'unknown' : plural(s.commits.length, 'commit')],
    ];
    return h('section', { class: 'panel facts-panel', 'aria-labelledby': 'facts-title', dataset: { failed: String(s.failed), rolledBack: String(s.rolledBack) } },
      h('h2', { id: 'facts-title', text: 'Facts' }),
      h('dl', { class: 'facts' }, rows.map(([k, v, cls]) => [h('dt', { text: k }), h('dd', { class: cls || null }, v)])));
  }

  function byTime(a, b) {
    const ta = parseTime(a.occurredAt);
    const tb = parseTime(b.occurredAt);
    const d = (ta ? ta.getTime() : 0) - (tb ? tb.getTime() : 0);
    return d || a.seq - b.seq;
  }

  function evidenceSection(key, title, events) {
    const list = events.slice().sort(byTime);
    const section = h('section', { class: 'evidence', id: `ev-${key}`, tabindex: '-1', 'aria-labelledby': `ev-${key}-title` },
      h('h3', { id: `ev-${key}-title` }, title, h('span', { class: 'count', text: ` (${fmtInt(list.length)})` })));
    if (!list.length) {
      section.appendChild(h('p', { class: 'empty', text: `No ${title.toLowerCase()} recorded for this deployment.` }));
      return section;
    }
    const ol = h('ol', { class: 'evidence-list' });
    const items = list.map((e) => (key === 'decisions' ? decisionItem(e) : evidenceItem(e)));
    items.forEach((li, i) => {
      if (i >= SECTION_PREVIEW) li.hidden = true;
      ol.appendChild(li);
    });
    section.appendChild(ol);
    if (list.length > SECTION_PREVIEW) {
      const more = h('button', { type: 'button', class: 'button small secondary', 'aria-expanded': 'false', text: `Show all ${fmtInt(list.length)} ${title.toLowerCase()}` });
      more.addEventListener('click', () => {
        const expand = more.getAttribute('aria-expanded') !== 'true';
        items.forEach((li, i) => { if (i >= SECTION_PREVIEW) li.hidden = !expand; });
        more.setAttribute('aria-expanded', String(expand));
        more.textContent = expand ? `Show the first ${SECTION_PREVIEW} only` : `Show all ${fmtInt(list.length)} ${title.toLowerCase()}`;
        if (expand && items[SECTION_PREVIEW]) {
          const link = items[SECTION_PREVIEW].querySelector('summary');
          if (link) link.focus();
        }
      });
      section.appendChild(more);
    }
    return section;
  }

  function itemHead(e) {
    return h('p', { class: 'item-head' },
      h('span', { class: 'seq mono', text: `#${e.seq}` }), ' ',
      timeEl(e.occurredAt, true), ' ',
      h('span', { class: 'type mono', text: e.type }), ' ',
      h('span', { class: 'actor', text: `by ${e.actor}` }));
  }

  function rawData(e) {
    return h('details', { class: 'raw' },
      h('summary', { text: `Event data (seq ${e.seq})` }),
      h('dl', { class: 'meta' },
        h('dt', { text: 'id' }), h('dd', { class: 'mono', text: e.id }),
        h('dt', { text: 'stream' }), h('dd', { class: 'mono', text: e.stream }),
        h('dt', { text: 'recorded' }), h('dd', { text: `${fmtTimeSec(e.recordedAt)} UTC by ${e.recordedBy}` }),
        e.source ? [h('dt', { text: 'source' }), h('dd', { class: 'mono break', text: e.source })] : null),
      h('pre', { class: 'json', tabindex: '0', text: JSON.stringify(e.data, null, 2) }));
  }

  function evidenceItem(e) {
    const outcome = get(e, 'data', 'outcome');
    return h('li', { class: 'evidence-item', dataset: { seq: e.seq, type: e.type, outcome: typeof outcome === 'string' ? outcome : null } },
      itemHead(e),
      h('p', { class: 'item-summary', text: summarize(e) }),
      rawData(e));
  }

  function decisionItem(e) {
    const d = e.data || {};
    const req = d.request || {};
    const reasons = Array.isArray(d.reasons) ? d.reasons : [];
    const allowed = d.decision === 'allow';
    const resource = req.resource && typeof req.resource === 'object'
      ? Object.entries(req.resource).map(([k, v]) => `${k} ${str(v)}`).join(', ') : str(req.resource);
    return h('li', { class: `evidence-item decision ${allowed ? 'allowed' : 'denied'}`, dataset: { seq: e.seq, decisionId: d.decisionId || e.id, decision: d.decision } },
      itemHead(e),
      h('p', { class: 'item-summary' },
        h('span', { class: `badge ${allowed ? 'outcome-succeeded' : 'outcome-failed'}`, text: allowed ? 'Allowed' : (d.decision === 'deny' ? 'Denied' : str(d.decision)) }),
        ` ${str(req.action)} requested for ${str(req.principal)}${resource ? ` on ${resource}` : ''}`,
        get(req, 'context', 'emergency') ? ' (emergency)' : ''),
      reasons.length
        ? h('ul', { class: 'reasons', 'aria-label': 'Reasons' }, reasons.map((x) => h('li', { class: `reason effect-${str(x && x.effect)}`, dataset: { policy: x && x.policy } },
          h('span', { class: 'mono policy', text: str(x && x.policy) }), ' ',
          h('span', { class: 'effect', text: `(${str(x && x.effect)})` }), ': ',
          h('span', { class: 'advice', text: str(x && x.advice) }))))
        : h('p', { class: 'empty', text: 'No reasons recorded.' }),
      Array.isArray(d.obligations) && d.obligations.length
        ? h('p', { class: 'obligations', text: `Obligations: ${d.obligations.map(str).join('; ')}` }) : null,
      h('p', { class: 'hint' }, 'Decision ', h('span', { class: 'mono', text: str(d.decisionId) }), ', policy set ', h('span', { class: 'mono', text: shortHash(d.policySetHash, 16) })),
      rawData(e));
  }

  // ---------------------------------------------------------------------------
  // Live feed (one subscription for the page; the header counts its events)
  // ---------------------------------------------------------------------------

  const live = {
    ws: null,
    state: 'idle', // idle | connecting | live | closed
    reason: '',
    count: 0,
    rows: [], // newest first, at most LIVE_MAX_ROWS
    seen: new Set(),
    lastSeq: null,
    paused: false,
    pending: 0,
    retry: 0,
    retryAt: 0,
    timer: null,
    ackTimer: null,
    subId: 0,
    filter: { service: '', type: '' },
    renderQueued: false,
    missed: false,
  };

  function liveFilterVar() {
    const f = {};
    if (live.filter.service) f.service = live.filter.service;
    if (live.filter.type) f.types = [live.filter.type];
    return Object.keys(f).length ? f : null;
  }

  function wsUrl() {
    return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${GRAPHQL}`;
  }

  function liveStart() {
    if (!token) return;
    if (live.ws) return;
    clearTimeout(live.timer);
    live.timer = null;
    liveSetState('connecting', '');
    let ws;
    try {
      ws = new WebSocket(wsUrl(), 'graphql-transport-ws');
    } catch (e) {
      liveClosed(`could not open the WebSocket: ${e.message}`);
      return;
    }
    live.ws = ws;
    let acked = false;
    ws.addEventListener('open', () => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } }));
      live.ackTimer = setTimeout(() => {
        if (!acked && live.ws === ws) ws.close(4408, 'connection_ack timed out');
      }, 10000);
    });
    ws.addEventListener('message', (m) => {
      if (live.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      switch (msg.type) {
        case 'connection_ack':
          acked = true;
          clearTimeout(live.ackTimer);
          live.retry = 0;
          liveSetState('live', '');
          liveSubscribe();
          break;
        case 'next': {
          if (msg.id !== String(live.subId)) return;
          const p = msg.payload || {};
          if (p.data && p.data.events) liveAdd(p.data.events);
          if (Array.isArray(p.errors) && p.errors.length) {
            liveSetState('live', `the server reported: ${errorLines(p.errors).join('; ')}`);
          }
          break;
        }
        case 'error': {
          if (msg.id !== String(live.subId)) return;
          const errs = Array.isArray(msg.payload) ? msg.payload : [msg.payload || {}];
          const text = errorLines(errs).join('; ') || 'subscription error';
          // e.g. a subscriber that fell too far behind: reconnect and read the gap.
          ws.close(4000, text.slice(0, 120));
          break;
        }
        case 'complete':
          if (msg.id === String(live.subId)) ws.close(4000, 'the server ended the subscription');
          break;
        case 'ping':
          ws.send(JSON.stringify({ type: 'pong' }));
          break;
        default:
          break;
      }
    });
    ws.addEventListener('close', (e) => {
      clearTimeout(live.ackTimer);
      if (live.ws !== ws) return;
      live.ws = null;
      const reason = e.reason || (e.code === 1006 ? 'the connection was lost' : `code ${e.code}`);
      if (/token|unauthenticated|unauthori[sz]ed/i.test(e.reason || '') || e.code === 4401 || e.code === 4403) {
        if (token) handleUnauthenticated(e.reason || 'the token was refused');
        return;
      }
      liveClosed(reason);
    });
  }

  function liveClosed(reason) {
    if (!token) return;
    const delay = Math.min(30000, 1000 * 2 ** live.retry) + Math.floor(Math.random() * 500);
    live.retry = Math.min(live.retry + 1, 6);
    live.retryAt = Date.now() + delay;
    liveSetState('closed', reason);
    clearTimeout(live.timer);
    live.timer = setTimeout(() => {
      live.timer = null;
      liveStart();
    }, delay);
  }

  function liveStop() {
    clearTimeout(live.timer);
    clearTimeout(live.ackTimer);
    live.timer = null;
    const ws = live.ws;
    live.ws = null;
    if (ws) {
      try {
        ws.close(1000, 'signed out');
      } catch (e) { /* ignore */ }
    }
    liveSetState('idle', '');
  }

  function liveSubscribe() {
    const ws = live.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || live.state !== 'live') return;
    if (live.subId) {
      try {
        ws.send(JSON.stringify({ id: String(live.subId), type: 'complete' }));
      } catch (e) { /* ignore */ }
    }
    live.subId += 1;
    ws.send(JSON.stringify({
      id: String(live.subId),
      type: 'subscribe',
      payload: { query: S_LIVE, variables: { filter: liveFilterVar() } },
    }));
    if (live.lastSeq !== null) liveBackfill(live.subId);
  }

  /** After a reconnect: read what was recorded while the socket was down. */
  async function liveBackfill(subId) {
    const from = live.lastSeq;
    try {
      const r = await gql(Q_LIVE_BACKFILL, { filter: liveFilterVar(), after: String(from) });
      if (subId !== live.subId) return;
      const conn = r.data && r.data.events;
      if (!conn) return;
      for (const ev of conn.nodes) liveAdd(ev);
      if (conn.pageInfo.hasNextPage) {
        live.missed = true;
        liveSetState(live.state, live.reason);
      }
    } catch (e) {
      /* the live rows simply have a gap */
    }
  }

  function liveAdd(ev) {
    if (!ev || typeof ev.seq !== 'number') return;
    if (live.seen.has(ev.seq)) return;
    live.seen.add(ev.seq);
    if (live.seen.size > 5000) {
      const floor = (live.lastSeq || 0) - 2500;
      for (const s of live.seen) if (s < floor) live.seen.delete(s);
    }
    live.count += 1;
    if (live.lastSeq === null || ev.seq > live.lastSeq) live.lastSeq = ev.seq;
    if (live.rows.length && ev.seq < live.rows[0].seq) {
      live.rows.push(ev);
      live.rows.sort((a, b) => b.seq - a.seq);
    } else {
      live.rows.unshift(ev);
    }
    if (live.rows.length > LIVE_MAX_ROWS) live.rows.length = LIVE_MAX_ROWS;
    if (live.paused) live.pending += 1;
    queueLiveRender();
  }

  function queueLiveRender() {
    if (live.renderQueued) return;
    live.renderQueued = true;
    const run = () => {
      live.renderQueued = false;
      updateLiveIndicator();
      if (currentView === 'live' && !live.paused) renderLiveRows();
      if (currentView === 'live') updatePauseButton();
    };
    if (document.hidden) setTimeout(run, 250);
    else requestAnimationFrame(run);
  }

  function liveStateText() {
    switch (live.state) {
      case 'connecting':
        return 'connecting…';
      case 'live': {
        let t = live.paused ? 'live (paused: new events are kept but not shown)' : 'live: new events appear as they are recorded';
        if (live.reason) t += `; ${live.reason}`;
        if (live.missed) t += '; some events recorded while disconnected are not shown (use the Audit search)';
        return t;
      }
      case 'closed': {
        const secs = Math.max(1, Math.round((live.retryAt - Date.now()) / 1000));
        return `closed: ${live.reason}; reconnecting in ${secs} s`;
      }
      default:
        return 'not connected';
    }
  }

  function liveSetState(state, reason) {
    live.state = state;
    live.reason = reason || '';
    updateLiveIndicator();
    const st = $('live-status');
    if (st) {
      st.textContent = liveStateText();
      st.dataset.state = state;
    }
    const retry = $('live-retry');
    if (retry) retry.hidden = state !== 'closed';
  }

  function updateLiveIndicator() {
    const ind = $('live-indicator');
    if (!ind) return;
    ind.dataset.state = live.state;
    ind.dataset.count = String(live.count);
    const label = live.state === 'live' ? 'live' : (live.state === 'closed' ? 'feed closed' : (live.state === 'connecting' ? 'connecting' : 'feed off'));
    $('live-indicator-text').textContent = `${fmtInt(live.count)} new event${live.count === 1 ? '' : 's'}`;
    ind.setAttribute('aria-label', `Live feed, ${label}: ${fmtInt(live.count)} event${live.count === 1 ? '' : 's'} received since the page opened`);
  }

  function renderLive(gen) {
    void gen;
    const view = h('section', { class: 'view', id: 'live-view', 'aria-labelledby': 'live-title' });
    const status = h('p', { id: 'live-status', class: 'live-status', role: 'status', 'aria-live': 'polite', dataset: { state: live.state }, text: liveStateText() });
    const pause = h('button', { id: 'live-pause', type: 'button', class: 'button secondary', 'aria-pressed': String(live.paused) });
    const retry = h('button', { id: 'live-retry', type: 'button', class: 'button secondary', text: 'Reconnect now', hidden: live.state !== 'closed' });
    const clearBtn = h('button', { id: 'live-clear', type: 'button', class: 'button secondary', text: 'Clear rows' });
    pause.addEventListener('click', () => {
      live.paused = !live.paused;
      live.pending = 0;
      updatePauseButton();
      if (!live.paused) renderLiveRows();
      liveSetState(live.state, live.reason);
    });
    retry.addEventListener('click', () => {
      live.retry = 0;
      clearTimeout(live.timer);
      live.timer = null;
      liveStart();
    });
    clearBtn.addEventListener('click', () => {
      live.rows = [];
      live.pending = 0;
      renderLiveRows();
      updatePauseButton();
    });

    const typeSelect = h('select', { id: 'l-type', name: 'l-type' },
      h('option', { value: '', text: 'Any type' }), EVENT_TYPES.map((t) => h('option', { value: t, text: t })));
    typeSelect.value = live.filter.type;
    const svc = h('input', { id: 'l-service', name: 'l-service', type: 'text', autocomplete: 'off', value: live.filter.service, list: 'services-list' });
    const form = h('form', { id: 'live-form', class: 'panel filter-form compact', 'aria-label': 'Live feed filter' },
      h('div', { class: 'field-row' },
        h('div', { class: 'field' }, h('label', { for: 'l-service', text: 'Service' }), svc),
        h('div', { class: 'field' }, h('label', { for: 'l-type', text: 'Type' }), typeSelect),
        h('div', { class: 'field field-button' }, h('button', { id: 'live-apply', type: 'submit', class: 'button', text: 'Filter the feed' }))),
      h('datalist', { id: 'services-list' }, Array.from(delivery.services).sort().map((s) => h('option', { value: s }))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const nf = { service: svc.value.trim(), type: typeSelect.value };
      if (nf.service === live.filter.service && nf.type === live.filter.type) return;
      live.filter = nf;
      live.rows = [];
      live.pending = 0;
      renderLiveRows();
      updatePauseButton();
      liveSubscribe();
    });

    const table = h('table', { class: 'data-table', id: 'live-table' },
      h('caption', { class: 'visually-hidden', text: `Events received since the page opened, newest first (at most ${LIVE_MAX_ROWS})` }),
      h('thead', null, h('tr', null, ['Seq', 'Occurred at (UTC)', 'Type', 'Actor', 'Summary'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', { id: 'live-rows' }));

    append(view, [
      h('div', { class: 'view-head' },
        h('h1', { id: 'live-title', text: 'Live feed' }),
        h('p', { class: 'lede', text: `Events as the ledger records them, newest first; the last ${LIVE_MAX_ROWS} are kept.` })),
      h('div', { class: 'live-bar' }, status, h('div', { class: 'actions' }, pause, retry, clearBtn)),
      form,
      h('p', { id: 'live-pending', class: 'hint', hidden: true }),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Live events table' }, table),
      h('p', { id: 'live-empty', class: 'empty', text: 'No events yet: they appear here as soon as they are recorded.' }),
    ]);
    // Fill in after the view is in the document.
    setTimeout(() => {
      updatePauseButton();
      renderLiveRows();
    }, 0);
    return view;
  }

  function updatePauseButton() {
    const pause = $('live-pause');
    if (!pause) return;
    pause.textContent = live.paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(live.paused));
    const pending = $('live-pending');
    if (pending) {
      pending.hidden = !(live.paused && live.pending > 0);
      pending.textContent = `${plural(live.pending, 'new event')} waiting; press Resume to show them.`;
    }
  }

  function renderLiveRows() {
    const tbody = $('live-rows');
    if (!tbody) return;
    const frag = document.createDocumentFragment();
    for (const ev of live.rows) {
      frag.appendChild(h('tr', { dataset: { seq: ev.seq, type: ev.type } },
        h('td', { class: 'num mono', text: String(ev.seq) }),
        h('td', { class: 'nowrap' }, timeEl(ev.occurredAt, true)),
        h('td', { class: 'mono', text: ev.type }),
        h('td', { class: 'nowrap', text: ev.actor }),
        h('td', { class: 'summary-cell' }, liveSummary(ev))));
    }
    clear(tbody).appendChild(frag);
    const empty = $('live-empty');
    if (empty) empty.hidden = live.rows.length > 0;
  }

  function liveSummary(ev) {
    const text = summarize(ev);
    const id = get(ev, 'data', 'deploymentId');
    if (typeof id === 'string' && ev.type && ev.type.startsWith('deployment.')) {
      return [text, ' ', h('a', { href: deploymentHref(id), text: 'evidence', 'aria-label': `Evidence of deployment ${id}` })];
    }
    return text;
  }

  // Refresh the "reconnecting in N s" countdown.
  setInterval(() => {
    if (live.state === 'closed') {
      const st = $('live-status');
      if (st) st.textContent = liveStateText();
    }
  }, 1000);

  // ---------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------

  function boot() {
    $('signout').addEventListener('click', signOut);
    // The skip link must not change the route (the hash is the router's).
    const skip = document.querySelector('.skip-link');
    if (skip) {
      skip.addEventListener('click', (e) => {
        e.preventDefault();
        const m = main();
        m.focus();
        m.scrollIntoView({ block: 'start' });
      });
    }
    window.addEventListener('hashchange', () => {
      const hash = location.hash;
      // An in-page anchor (#something, not #/route) that exists: not a route.
      if (hash && !hash.startsWith('#/') && hash.length > 1 && document.getElementById(hash.slice(1))) return;
      render();
    });
    if (token) liveStart();
    render();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
