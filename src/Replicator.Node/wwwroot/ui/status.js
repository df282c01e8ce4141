// Replicator status page. Polls the node's admin API (GET /api/v1/cluster, with the bearer token)
// once a second and draws both nodes, the witness, each volume's replicas and resync, pool usage,
// and client and resync throughput over the last five minutes from the samples it has kept.
//
// The token comes in the URL fragment (/#token=…, never sent to the server) or from a form, and is
// kept in sessionStorage: this tab only. Everything the API returns reaches the page as text nodes
// or attribute values, never as HTML.
'use strict';

(() => {
  const POLL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;
  const HISTORY_MS = 5 * 60 * 1000;
  const TOKEN_KEY = 'replicator.adminToken';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const MIB = 1024 * 1024;
  const NODE_COLOURS = ['#2f6fdf', '#a742c7', '#c2410c', '#0f766e'];
  const RESYNC_COLOUR = '#d97706';

  const state = {
    token: null,
    view: null,
    viewAt: 0,
    failure: null,
    samples: [],
    lastSeen: {},
    timer: 0,
    polling: false,
    generation: 0,
  };

  const app = document.getElementById('app');
  const healthPill = document.getElementById('health');
  const summary = document.getElementById('summary');
  const updated = document.getElementById('updated');
  const banner = document.getElementById('banner');
  const forgetButton = document.getElementById('forget-token');

  // ---- DOM helpers: text is always a text node, attributes are always set as values.

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    applyProps(el, props);
    appendAll(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) {
        el.setAttribute(key, String(value));
      }
    }
    appendAll(el, children);
    return el;
  }

  function applyProps(el, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (key === 'class') {
        el.className = value;
      } else if (key === 'dataset') {
        for (const [name, v] of Object.entries(value)) {
          if (v !== null && v !== undefined) {
            el.dataset[name] = String(v);
          }
        }
      } else if (key === 'style') {
        Object.assign(el.style, value);
      } else if (key.startsWith('on')) {
        el.addEventListener(key.slice(2), value);
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }

  /** Replaces an element's children; arrays are flattened, strings become text nodes. */
  function setChildren(el, ...children) {
    el.replaceChildren();
    appendAll(el, children);
  }

  function appendAll(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) {
        continue;
      }
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function pill(kind, text, dataset) {
    return h('span', { class: `pill ${kind}`, dataset }, text);
  }

  function bar(percent, kind, extraClass) {
    const clamped = Math.max(0, Math.min(100, percent));
    return h('div', { class: `bar ${extraClass || ''}` },
      h('span', { class: `fill ${kind}`, style: { width: `${clamped.toFixed(2)}%` } }));
  }

  // ---- Formatting

  function bytes(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) {
      return '–';
    }
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let value = n;
    let unit = 0;
    while (Math.abs(value) >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    const shown = unit === 0 ? value : value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
    return `${shown} ${units[unit]}`;
  }

  function rate(bytesPerSecond) {
    return `${bytes(bytesPerSecond)}/s`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
      return '–';
    }
    const s = Math.max(0, Math.ceil(seconds));
    if (s < 60) {
      return `${s} s`;
    }
    if (s < 3600) {
      return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
    }
    return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`;
  }

  function clock(time) {
    const date = new Date(time);
    return Number.isNaN(date.getTime()) ? '–' : date.toLocaleTimeString([], { hour12: false });
  }

  /** 1.0.0+e5639d648cdf… → 1.0.0 (e5639d6) */
  function shortVersion(version) {
    const [release, build] = String(version || '?').split('+');
    return build ? `${release} (${build.slice(0, 7)})` : release;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  // ---- Token

  function tokenFromFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const token = (params.get('token') || '').trim();
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      // Keep the token out of the address bar, the history and screenshots.
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function start() {
    state.token = tokenFromFragment();
    if (!state.token) {
      showTokenForm(null);
      return;
    }
    forgetButton.hidden = false;
    if (!state.polling) {
      state.polling = true;
      poll();
    }
  }

  function forgetToken(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showTokenForm(message);
  }

  function showTokenForm(message) {
    clearTimeout(state.timer);
    state.generation++;
    state.polling = false;
    state.view = null;
    state.failure = null;
    forgetButton.hidden = true;
    banner.hidden = true;
    setHealth('unknown', 'no token');
    summary.textContent = '';
    updated.textContent = '';
    const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true, size: 70, 'aria-label': 'admin token' });
    const form = h('form', {
      id: 'token-form',
      class: 'panel token-form',
      onsubmit: (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (token) {
          sessionStorage.setItem(TOKEN_KEY, token);
          start();
        }
      },
    },
    h('h2', null, 'Admin token'),
    message ? h('p', { class: 'error' }, message) : null,
    h('p', null,
      'This page shows what the node\'s admin API reports, and the API needs its bearer token. It is in the file ',
      h('code', null, 'admin.token'), ': in the cluster directory for ', h('code', null, 'replicator cluster up'),
      ' (', h('code', null, 'cluster.json'), ' names it as ', h('code', null, 'adminTokenFile'), '), or in the data directory of a node run with ',
      h('code', null, 'replicator node run'), '.'),
    h('p', null, 'Open the page as ', h('code', null, `${location.origin}/#token=<token>`),
      ' or paste the token here. It is kept in this browser tab only.'),
    h('div', { class: 'token-row' }, input, h('button', { type: 'submit' }, 'Show status')));
    app.className = '';
    setChildren(app, form);
    input.focus();
  }

  // ---- Polling

  async function poll() {
    clearTimeout(state.timer);
    if (!state.token) {
      return;
    }
    const generation = state.generation;
    const started = Date.now();
    const abort = new AbortController();
    const timeout = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch('/api/v1/cluster', {
        headers: { Authorization: `Bearer ${state.token}`, Accept: 'application/json' },
        cache: 'no-store',
        signal: abort.signal,
      });
      if (generation !== state.generation) {
        return;
      }
      if (response.status === 401) {
        forgetToken('The node refused this token. Check that it is the token of this cluster.');
        return;
      }
      if (!response.ok) {
        throw new Error(`the admin API answered ${response.status} ${response.statusText}`);
      }
      const view = await response.json();
      state.view = view;
      state.viewAt = Date.now();
      state.failure = null;
      record(view);
    } catch (error) {
      if (generation !== state.generation) {
        return;
      }
      const message = error.name === 'AbortError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
        : error instanceof TypeError ? 'the connection failed' : error.message;
      state.failure = { message, since: state.failure ? state.failure.since : Date.now() };
      record(null);
    } finally {
      clearTimeout(timeout);
    }
    if (generation !== state.generation) {
      return;
    }
    render();
    state.timer = setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  /** One sample a poll: client read/write bytes per second per node (null while unreachable) and the resync rate. */
  function record(view) {
    const now = Date.now();
    const sample = { t: now, nodes: {}, resync: null };
    if (view) {
      sample.resync = 0;
      for (const node of view.nodes) {
        if (!node.reachable) {
          sample.nodes[node.name] = null;
          continue;
        }
        state.lastSeen[node.name] = now;
        let read = 0;
        let write = 0;
        for (const volume of node.volumes || []) {
          read += volume.io ? volume.io.readBytesPerSecond : 0;
          write += volume.io ? volume.io.writeBytesPerSecond : 0;
          const replication = volume.replication;
          if (replication && replication.role === 'source' && replication.resync.state === 'running') {
            sample.resync += replication.resync.bytesPerSecond;
          }
        }
        sample.nodes[node.name] = { read, write };
      }
    }
    state.samples.push(sample);
    while (state.samples.length > 0 && state.samples[0].t < now - HISTORY_MS) {
      state.samples.shift();
    }
  }

  // ---- The model: volumes across nodes, and how healthy each is

  function volumesOf(view) {
    const byName = new Map();
    for (const node of view.nodes) {
      for (const volume of node.volumes || []) {
        if (!byName.has(volume.name)) {
          byName.set(volume.name, { name: volume.name, id: volume.id, replicas: new Map() });
        }
        byName.get(volume.name).replicas.set(node.name, volume);
      }
    }
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  const SEVERITY = { ok: 0, standalone: 0, resync: 1, degraded: 2, split: 3, bad: 3 };

  function volumeHealth(volume, view) {
    const infos = [...volume.replicas.values()];
    const replications = infos.map((v) => v.replication).filter(Boolean);
    const problem = replications.find((r) => r.problem);
    if (problem) {
      return /^split brain/i.test(problem.problem) ? { kind: 'split', label: 'split brain' } : { kind: 'split', label: 'unpaired' };
    }
    if (infos.some((v) => v.integrity && v.integrity.unrecoverable > 0)) {
      return { kind: 'bad', label: 'unrecoverable blocks' };
    }
    if (replications.length === 0) {
      return { kind: 'standalone', label: 'not replicated' };
    }
    const detached = replications.find((r) => r.detached);
    if (detached) {
      return { kind: 'bad', label: detached.detached === 'pool-full' ? 'pool full' : 'disk failed' };
    }
    if (replications.some((r) => r.alert)) {
      return { kind: 'degraded', label: 'one copy' };
    }
    const everywhere = view.nodes.every((n) => n.reachable && volume.replicas.has(n.name));
    const inSync = everywhere && replications.length === view.nodes.length
      && replications.every((r) => r.connection === 'connected' && r.diskState === 'up-to-date' && r.outOfSyncBytes === 0);
    if (inSync) {
      return { kind: 'ok', label: 'in sync' };
    }
    if (replications.some((r) => r.resync.state === 'running')) {
      return { kind: 'resync', label: 'resyncing' };
    }
    if (replications.some((r) => r.resync.state === 'paused')) {
      return { kind: 'degraded', label: 'resync paused' };
    }
    return { kind: 'degraded', label: 'degraded' };
  }

  function clusterHealth(view, volumes) {
    if (state.failure) {
      return { kind: 'bad', label: 'no answer' };
    }
    let worst = { kind: 'ok', label: 'healthy' };
    const consider = (candidate) => {
      if (SEVERITY[candidate.kind] > SEVERITY[worst.kind]) {
        worst = candidate;
      }
    };
    for (const volume of volumes) {
      const health = volumeHealth(volume, view);
      consider(health.kind === 'standalone' ? { kind: 'ok', label: 'healthy' } : health);
    }
    if (view.nodes.some((n) => !n.reachable) || view.nodes.some((n) => n.node && n.node.peer && !n.node.peer.connected)) {
      consider({ kind: 'degraded', label: 'degraded' });
    }
    if (view.witness && !view.witness.reachable) {
      consider({ kind: 'degraded', label: 'witness unreachable' });
    }
    return worst;
  }

  function sameOrigin(url) {
    try {
      return new URL(url).origin === location.origin;
    } catch {
      return false;
    }
  }

  /** A link to another node's status page, carrying the token in the fragment; only for http(s) addresses. */
  function pageLink(admin, text) {
    let url;
    try {
      url = new URL(admin);
    } catch {
      return null;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return null;
    }
    url.pathname = '/';
    url.search = '';
    url.hash = `token=${encodeURIComponent(state.token || '')}`;
    return h('a', { href: url.href, rel: 'noreferrer' }, text);
  }

  // ---- Rendering

  function setHealth(kind, label) {
    healthPill.className = `pill ${kind}`;
    healthPill.dataset.health = kind;
    healthPill.textContent = label;
  }

  function render() {
    const view = state.view;
    renderBanner(view);
    if (!view) {
      setHealth('bad', 'no answer');
      setChildren(app, h('p', { class: 'muted' }, 'Waiting for the node to answer…'));
      return;
    }
    const volumes = volumesOf(view);
    const health = clusterHealth(view, volumes);
    setHealth(health.kind, health.label);
    const up = view.nodes.filter((n) => n.reachable).length;
    summary.textContent = `${state.failure ? 'last known: ' : ''}${up} of ${plural(view.nodes.length, 'node')} up · `
      + `${view.witness ? (view.witness.reachable ? 'witness reachable' : 'witness unreachable') : 'no witness'} · ${plural(volumes.length, 'volume')}`;
    const self = view.nodes.find((n) => sameOrigin(n.admin));
    updated.textContent = `updated ${clock(state.viewAt)}${self ? ` from node ${self.name}` : ''}`;
    app.className = state.failure ? 'stale' : '';
    setChildren(app,
      h('section', { class: 'cards' }, view.nodes.map((node, i) => nodeCard(node, i)), witnessCard(view, volumes)),
      volumesPanel(view, volumes),
      throughputPanel(view));
  }

  function renderBanner(view) {
    if (!state.failure) {
      banner.hidden = true;
      setChildren(banner);
      return;
    }
    const others = view ? view.nodes.filter((n) => !sameOrigin(n.admin)) : [];
    setChildren(banner,
      h('strong', null, 'This node does not answer'),
      ` since ${clock(state.failure.since)} (${state.failure.message}).`,
      view ? ` Showing what it reported at ${clock(state.viewAt)}.` : '',
      others.map((n) => [' ', pageLink(n.admin, `Open node ${n.name}'s status page`)]));
    banner.hidden = false;
  }

  function fact(label, ...value) {
    return [h('dt', null, label), h('dd', null, ...value)];
  }

  function nodeCard(node, index) {
    const info = node.node;
    const self = sameOrigin(node.admin);
    const head = h('header', null,
      h('span', { class: 'swatch', style: { background: NODE_COLOURS[index % NODE_COLOURS.length] } }),
      h('h2', null, `node ${node.name}`),
      pill(node.reachable ? 'ok' : 'bad', node.reachable ? 'up' : 'unreachable'),
      h('span', { class: 'spacer' }),
      self ? h('span', { class: 'muted small' }, 'serving this page') : node.reachable ? pageLink(node.admin, 'open its page') : null);
    const card = h('article', { class: `card node ${node.reachable ? 'up' : 'down'}`, dataset: { node: node.name, reachable: node.reachable } }, head);
    if (!node.reachable || !info) {
      const seen = state.lastSeen[node.name];
      card.append(
        h('p', { class: 'error' }, node.error || 'no answer'),
        h('p', { class: 'muted small' }, `admin API ${node.admin}`, seen ? ` · last answered at ${clock(seen)}` : ''));
      return card;
    }
    const peer = info.peer;
    card.append(
      h('dl', { class: 'facts' },
        fact('peer', peer
          ? [pill(peer.connected ? 'ok' : 'degraded', peer.connected ? 'connected' : 'disconnected', { peer: peer.name }),
            peer.connected ? ` to ${peer.name}` : ` from ${peer.name}`,
            peer.connected && peer.connectedSince ? ` since ${clock(peer.connectedSince)}` : '',
            peer.connects > 1 ? h('span', { class: 'muted' }, ` (${plural(peer.connects, 'connect')})`) : '',
            peer.connected && !peer.readLeaseHeld ? h('span', { class: 'muted' }, ' · read lease lapsed: paired reads wait for the peer') : '']
          : 'none configured'),
        fact('NBD', (info.nbdTcp || '–').replace(/^nbd:\/\//, '')),
        fact('process', h('span', { title: `version ${info.version}, admin API ${node.admin}` }, `pid ${info.pid} · version ${shortVersion(info.version)}`))),
      poolUsage(node.pool));
    return card;
  }

  function poolUsage(pool) {
    if (!pool) {
      return null;
    }
    const used = pool.capacityBytes > 0 ? (pool.allocatedBytes / pool.capacityBytes) * 100 : 0;
    const overcommit = pool.capacityBytes > 0 ? pool.virtualBytes / pool.capacityBytes : 0;
    return h('div', { class: 'pool', dataset: { allocatedBytes: pool.allocatedBytes, capacityBytes: pool.capacityBytes } },
      h('div', { class: 'row' },
        h('span', null, 'pool'),
        h('span', null, `${bytes(pool.allocatedBytes)} of ${bytes(pool.capacityBytes)} used (${used.toFixed(used < 10 ? 1 : 0)}%) · ${bytes(pool.freeBytes)} free`)),
      bar(used, used > 90 ? 'bad' : used > 75 ? 'warn' : 'ok'),
      h('div', { class: 'muted small' },
        `${plural(pool.volumes, 'volume')}, ${bytes(pool.virtualBytes)} provisioned (${overcommit.toFixed(2)}× the capacity)`),
      pool.blockChecksums === false
        ? h('div', { class: 'checksums-off bad-text', dataset: { blockChecksums: 'off' } },
          'BLOCK CHECKSUMS ARE OFF (a measurement option): bad blocks are neither detected nor repaired on this node')
        : h('div', { class: 'muted small', dataset: { blockChecksums: 'on' } }, 'every block checksummed and checked on read'));
  }

  function witnessCard(view, volumes) {
    const witness = view.witness;
    const quorum = view.nodes.map((n) => n.node && n.node.quorum).find(Boolean);
    const head = h('header', null, h('h2', null, 'witness'),
      witness ? pill(witness.reachable ? 'ok' : 'bad', witness.reachable ? 'reachable' : 'unreachable') : pill('unknown', 'none'));
    const card = h('article', { class: 'card witness', dataset: { reachable: witness ? witness.reachable : null } }, head);
    if (witness) {
      card.append(h('dl', { class: 'facts' }, fact('address', witness.address)));
      if (!witness.reachable) {
        card.append(h('p', { class: 'error' }, witness.error || 'no answer'));
      }
    }
    if (quorum) {
      card.append(h('p', { class: 'muted small' }, quorum));
    }
    if (witness && witness.reachable) {
      const names = new Map(volumes.map((v) => [v.id, v.name]));
      card.append(witness.votes.length === 0
        ? h('p', { class: 'muted small' }, 'No votes held: no node is writing alone.')
        : h('ul', { class: 'votes' }, witness.votes.map((vote) => h('li', null,
          h('strong', null, names.get(vote.volume) || vote.volume),
          Date.parse(vote.expiresAt) > Date.now()
            ? ` — node ${vote.holder} may write alone, until ${clock(vote.expiresAt)}`
            : h('span', { class: 'muted' }, ` — node ${vote.holder}'s vote expired at ${clock(vote.expiresAt)}`)))));
    }
    return card;
  }

  function volumesPanel(view, volumes) {
    const nodes = view.nodes.map((n) => n.name);
    const head = h('tr', null, h('th', null, 'volume'), h('th', null, 'state'),
      nodes.map((n) => h('th', null, `replica on ${n}`)), h('th', { class: 'resync-col' }, 'resync'), h('th', null, 'client I/O'));
    const rows = [];
    for (const volume of volumes) {
      const health = volumeHealth(volume, view);
      rows.push(h('tr', { class: `volume health-${health.kind}`, dataset: { volume: volume.name, health: health.kind } },
        volumeCell(volume),
        h('td', null, pill(health.kind, health.label)),
        view.nodes.map((node) => replicaCell(node, volume)),
        h('td', { class: 'resync-col' }, resyncProgress(volume, nodes)),
        ioCell(volume)));
      const problems = [...volume.replicas].filter(([, v]) => v.replication && (v.replication.problem || v.replication.alert));
      if (problems.length > 0) {
        rows.push(h('tr', { class: 'problem-row', dataset: { volume: volume.name } },
          h('td', { colspan: nodes.length + 4 },
            problems.map(([node, v]) => h('div', { class: 'problem' }, h('strong', null, `node ${node}: `), v.replication.problem || v.replication.alert)))));
      }
    }
    return h('section', { class: 'panel volumes' },
      h('h2', null, 'Volumes'),
      volumes.length === 0
        ? h('p', { class: 'muted' }, 'No volumes yet. Create one with replicator volume create NAME --size 10G.')
        : h('table', null, h('thead', null, head), h('tbody', null, rows)));
  }

  function volumeCell(volume) {
    const infos = [...volume.replicas.values()];
    const first = infos[0];
    const allocated = Math.max(...infos.map((v) => v.allocatedBytes));
    const clients = infos.reduce((sum, v) => sum + (v.attachedClients || 0), 0);
    return h('td', { class: 'volume-name' },
      h('strong', null, volume.name),
      h('div', { class: 'muted small' },
        `${bytes(first.sizeBytes)} · ${bytes(allocated)} written`,
        first.preferredNode ? ` · prefers ${first.preferredNode}` : '',
        ` · ${plural(clients, 'client')}`));
  }

  function replicaCell(node, volume) {
    if (!node.reachable) {
      return h('td', { class: 'replica', dataset: { node: node.name, reachable: 'false' } }, pill('unknown', 'node unreachable'));
    }
    const info = volume.replicas.get(node.name);
    if (!info) {
      return h('td', { class: 'replica', dataset: { node: node.name } }, pill('degraded', 'missing'));
    }
    const r = info.replication;
    if (!r) {
      return h('td', { class: 'replica', dataset: { node: node.name } }, pill('unknown', 'standalone'));
    }
    const disk = r.diskState === 'up-to-date' ? 'ok' : r.diskState === 'inconsistent' || r.diskState === 'outdated' ? 'degraded' : r.detached ? 'bad' : 'unknown';
    const connection = r.connection === 'connected' ? '' : r.connection === 'unpaired' ? 'bad-text' : 'warn-text';
    return h('td', {
      class: 'replica',
      dataset: { node: node.name, connection: r.connection, diskState: r.diskState, role: r.role, outOfSyncBytes: r.outOfSyncBytes },
    },
    pill(disk, r.detached === 'pool-full' ? 'diskless: pool full' : r.detached === 'failed' ? 'diskless: disk failed' : r.diskState),
    h('div', { class: 'small' },
      h('span', { class: connection }, r.connection),
      r.role && r.role !== 'none' ? ` · resync ${r.role}` : '',
      r.writesOrderedBy === node.name ? ' · orders writes' : ''),
    r.outOfSyncBytes > 0 ? h('div', { class: 'small warn-text' }, `${bytes(r.outOfSyncBytes)} out of sync`) : null,
    integrityLine(info));
  }

  /** Damaged blocks this replica found (and healed, or could not) and where its scrub stands. */
  function integrityLine(info) {
    const i = info.integrity;
    const s = info.scrub;
    if (!i || !s) {
      return null;
    }
    const damage = i.detected + i.unrecoverable === 0
      ? h('span', { class: 'muted' }, 'no damaged block')
      : h('span', { class: i.unrecoverable > 0 ? 'bad-text' : 'warn-text', title: i.last ? `last: ${i.last.outcome} at ${i.last.offset} on ${i.last.replica} (${i.last.path}) at ${clock(i.last.at)}` : '' },
        `${plural(i.detected, 'damaged block')}, ${i.healed} healed, ${i.unrecoverable} unrecoverable`);
    const scrub = s.state === 'idle'
      ? `scrub idle, last pass ${s.lastPass.scannedBytes > 0 ? `found ${s.lastPass.detected}` : 'none yet'}`
      : `scrub ${s.state} ${s.totalBytes > 0 ? ((s.doneBytes / s.totalBytes) * 100).toFixed(0) : 0}% at ${rate(s.bytesPerSecond)}, ETA ${duration(s.etaSeconds)}`;
    return h('div', {
      class: 'small integrity',
      dataset: { detected: i.detected, healed: i.healed, unrecoverable: i.unrecoverable, scrubState: s.state, scrubDoneBytes: s.doneBytes },
    }, damage, h('span', { class: 'muted' }, ` · ${scrub}`));
  }

  /**
   * The resync of a volume as its source reports it: a bar with percent, bytes, rate and ETA. While
   * the peer is away the source has nothing running but knows how much it will send: "waiting".
   */
  function resyncProgress(volume, nodes) {
    const replicas = [...volume.replicas].filter(([, v]) => v.replication).map(([node, v]) => ({ node, r: v.replication }));
    const active = replicas.filter((x) => x.r.resync.state !== 'idle');
    const chosen = active.find((x) => x.r.role === 'source') || active[0];
    const other = (name) => nodes.find((n) => n !== name) || '?';
    if (chosen) {
      const resync = chosen.r.resync;
      const source = chosen.r.role === 'target' ? other(chosen.node) : chosen.node;
      const target = other(source);
      const percent = resync.totalBytes > 0 ? (resync.doneBytes / resync.totalBytes) * 100 : 0;
      const paused = resync.state === 'paused';
      return h('div', {
        class: `resync-progress ${resync.state}`,
        dataset: {
          volume: volume.name, state: resync.state, source, target,
          doneBytes: resync.doneBytes, totalBytes: resync.totalBytes, bytesPerSecond: resync.bytesPerSecond,
          etaSeconds: resync.etaSeconds === null || resync.etaSeconds === undefined ? null : resync.etaSeconds,
        },
      },
      h('div', { class: 'row' },
        h('span', { class: 'resync-percent' }, `${percent.toFixed(1)}%`),
        h('span', { class: 'resync-bytes' }, `${bytes(resync.doneBytes)} of ${bytes(resync.totalBytes)}`)),
      bar(percent, paused ? 'warn' : 'resync', 'resync-bar'),
      h('div', { class: 'row small' },
        h('span', null, `${source} → ${target}`),
        h('span', { class: 'resync-rate' }, paused ? 'paused' : rate(resync.bytesPerSecond),
          resync.rateLimit > 0 ? ` (cap ${rate(resync.rateLimit)})` : '',
          resync.checksum ? ' · checksum' : ''),
        h('span', { class: 'resync-eta' }, paused ? '' : `ETA ${duration(resync.etaSeconds)}`)));
    }
    if (replicas.some((x) => x.r.problem)) {
      return h('div', { class: 'resync-progress blocked', dataset: { volume: volume.name, state: 'blocked' } },
        h('span', { class: 'bad-text' }, 'none until an admin resolves the problem below'));
    }
    const waiting = replicas.filter((x) => x.r.outOfSyncBytes > 0).sort((a, b) => b.r.outOfSyncBytes - a.r.outOfSyncBytes)[0];
    if (waiting) {
      const peer = other(waiting.node);
      return h('div', {
        class: 'resync-progress waiting',
        dataset: { volume: volume.name, state: 'waiting', source: waiting.node, totalBytes: waiting.r.outOfSyncBytes, doneBytes: 0 },
      }, h('span', { class: 'warn-text' }, waiting.r.connection === 'connected'
        ? `${bytes(waiting.r.outOfSyncBytes)} to send from ${waiting.node} to ${peer}`
        : `${bytes(waiting.r.outOfSyncBytes)} to send from ${waiting.node} when ${peer} is back`));
    }
    return h('div', { class: 'resync-progress idle muted', dataset: { volume: volume.name, state: 'idle' } },
      replicas.length > 0 ? 'nothing to resync' : '–');
  }

  function ioCell(volume) {
    let read = 0;
    let write = 0;
    for (const info of volume.replicas.values()) {
      if (info.io) {
        read += info.io.readBytesPerSecond;
        write += info.io.writeBytesPerSecond;
      }
    }
    return h('td', { class: `io small ${read + write > 0 ? '' : 'muted'}` },
      h('div', null, `read ${rate(read)}`), h('div', null, `write ${rate(write)}`));
  }

  // ---- Throughput graph

  function throughputPanel(view) {
    const series = [];
    view.nodes.forEach((node, i) => {
      const colour = NODE_COLOURS[i % NODE_COLOURS.length];
      series.push({ label: `${node.name} write`, colour, dash: null, value: (s) => (s.nodes[node.name] ? s.nodes[node.name].write : null) });
      series.push({ label: `${node.name} read`, colour, dash: '6 4', value: (s) => (s.nodes[node.name] ? s.nodes[node.name].read : null) });
    });
    series.push({ label: 'resync', colour: RESYNC_COLOUR, dash: null, value: (s) => s.resync });
    const last = state.samples[state.samples.length - 1];
    const legend = h('ul', { class: 'legend' }, series.map((s) => {
      const current = last ? s.value(last) : null;
      return h('li', null,
        h('span', { class: `line-swatch${s.dash ? ' dashed' : ''}`, style: { borderColor: s.colour } }),
        `${s.label} `, h('span', { class: 'muted' }, current === null || current === undefined ? '–' : rate(current)));
    }));
    return h('section', { class: 'panel throughput' },
      h('div', { class: 'row' }, h('h2', null, 'Throughput'), h('span', { class: 'muted small' }, 'client I/O per node and resync, last 5 minutes')),
      legend,
      chart(series));
  }

  /** The top of the y axis: 1, 2 or 5 × 10^k MiB/s, at least 1 MiB/s. */
  function niceCeiling(value) {
    const floor = Math.max(value, MIB);
    const exponent = Math.pow(10, Math.floor(Math.log10(floor / MIB)));
    for (const step of [1, 2, 5, 10]) {
      if (step * exponent * MIB >= floor) {
        return step * exponent * MIB;
      }
    }
    return 10 * exponent * MIB;
  }

  function chart(series) {
    const width = 1200;
    const height = 140;
    const left = 70;
    const right = 10;
    const top = 8;
    const bottom = 20;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const now = Date.now();
    const from = now - HISTORY_MS;
    let max = 0;
    for (const sample of state.samples) {
      for (const s of series) {
        const v = s.value(sample);
        if (v !== null && v !== undefined && v > max) {
          max = v;
        }
      }
    }
    const yMax = niceCeiling(max * 1.05);
    const x = (t) => left + ((t - from) / HISTORY_MS) * plotW;
    const y = (v) => top + plotH - (v / yMax) * plotH;
    const graph = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': 'throughput over the last 5 minutes' });
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      graph.append(
        svg('line', { x1: left, x2: width - right, y1: y(v), y2: y(v), class: i === 0 ? 'axis' : 'grid' }),
        svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, `${Number((v / MIB).toFixed(2))} MiB/s`));
    }
    for (let minutes = 5; minutes >= 0; minutes--) {
      const t = now - minutes * 60 * 1000;
      graph.append(svg('text', { x: x(t), y: height - 4, 'text-anchor': minutes === 5 ? 'start' : minutes === 0 ? 'end' : 'middle', class: 'tick' },
        minutes === 0 ? 'now' : `−${minutes} min`));
    }
    for (const s of series) {
      let points = [];
      const flush = () => {
        if (points.length > 1) {
          graph.append(svg('polyline', {
            points: points.join(' '), fill: 'none', stroke: s.colour, 'stroke-width': 2, 'stroke-dasharray': s.dash, 'stroke-linejoin': 'round',
          }));
        }
        points = [];
      };
      for (const sample of state.samples) {
        const v = s.value(sample);
        if (v === null || v === undefined) {
          flush();
        } else {
          points.push(`${x(sample.t).toFixed(1)},${y(v).toFixed(1)}`);
        }
      }
      flush();
    }
    return graph;
  }

  // ---- Start

  forgetButton.addEventListener('click', () => forgetToken(null));
  window.addEventListener('hashchange', () => {
    if (/token=/.test(location.hash)) {
      start();
    }
  });
  start();
})();
