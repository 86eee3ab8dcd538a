#!/usr/bin/env node
// A real SMSC for the SMPP adapter's tests and benchmark: the npm package `smpp` (0.5.1) as a
// server (createServer), with what an operator's SMS centre does that the adapter must cope with.
//
//   node smsc.js --port 2775 --control-port 2776 --system-id cs-hub --password secret \
//                --submits /tmp/submits.jsonl [--receipts /tmp/receipts.jsonl] [--resume]
//                [--tps 500] [--window 20] [--latency-ms 10] [--receipt-delay-ms 0]
//                [--receipt-ids mixed|hex|decimal|padded|upper] [--early-receipts 0.1]
//                [--no-receipts] [--no-record]
//
// What it does:
// - bind_transceiver checks system_id (ESME_RINVSYSID) and password (ESME_RINVPASWD), then
//   closes a refused session; enquire_link and unbind are answered.
// - submit_sm is answered with a hex message id (upper case, leading zeros) after
//   --latency-ms; every received submit_sm is written to the --submits JSONL file *before* it
//   is answered (writeSync: the line survives a kill -9), short_message as hex.
// - --tps N answers ESME_RTHROTTLED beyond N submits per second; --window N answers
//   ESME_RMSGQFUL when N submits are already waiting for their response (with latency).
// - Destination rules: 0000... -> ESME_RINVDSTADR (permanent); 1390000... -> receipt UNDELIV
//   err:012; 1380000... -> receipt EXPIRED err:027; 1370000... -> ESME_RSYSERR once per
//   message id (retryable); everything else DELIVRD.
// - One delivery receipt per accepted part (esm_class 0x04), with receipted_message_id and
//   message_state TLVs and the Appendix B text; --receipt-ids chooses how ids are written
//   (mixed rotates hex / decimal / padded / lower case and writes the TLV and the text
//   differently), --early-receipts sends that fraction of receipts before the submit_sm_resp.
// - Store and forward: a receipt is owed until the ESME answers it with deliver_sm_resp ESME_ROK
//   (a session that closes first gives its unanswered receipts back, sent on the next bind);
//   with --receipts FILE every answered receipt is recorded, and --resume reads both files at
//   start and sends the receipts still owed when a client binds.
// - Control API on --control-port (HTTP, 127.0.0.1): POST /mo {source, destination, text,
//   parts?, ref_bits?} sends a mobile-originated deliver_sm (UCS2, split when parts > 1),
//   GET /stats answers counters, POST /drop closes every session (a network cut).
'use strict';

const fs = require('fs');
const http = require('http');
const smpp = require('smpp');
const defs = require('smpp/lib/defs');

// Keep the raw short_message: the server decodes it, the tests want the octets.
const origDecode = defs.filters.message.decode;
defs.filters.message.decode = function (value, skipUdh) {
  const result = origDecode.call(this, value, skipUdh);
  if (result && typeof result === 'object' && Buffer.isBuffer(value)) result.raw = value;
  return result;
};

function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else { out[key] = next; i++; }
  }
  return out;
}

const opt = args(process.argv);
const port = Number(opt.port || 2775);
const controlPort = Number(opt['control-port'] || 0);
const systemId = String(opt['system-id'] || 'cs-hub');
const password = String(opt.password || 'secret');
const tps = Number(opt.tps || 0);
const windowLimit = Number(opt.window || 0);
const latency = Number(opt['latency-ms'] || 0);
const receiptDelay = Number(opt['receipt-delay-ms'] || 0);
const idStyle = String(opt['receipt-ids'] || 'mixed');
const earlyFraction = Number(opt['early-receipts'] || 0);
const sendReceipts = !opt['no-receipts'];
const record = !opt['no-record'];

const submitsFd = opt.submits && record ? fs.openSync(opt.submits, 'a') : null;
const receiptsFd = opt.receipts ? fs.openSync(opt.receipts, 'a') : null;

// Message ids never repeat across restarts: milliseconds at start * 1000 + a counter.
let nextId = Date.now() * 1000;
const stats = { binds: 0, refused: 0, submits: 0, accepted: 0, throttled: 0, queue_full: 0, rejected: 0,
  receipts: 0, mo: 0, sessions: 0, enquire_links: 0 };
const sessions = new Set();
const owed = [];            // receipts owed from a previous run (--resume), sent on the next bind
const sysErrOnce = new Set();

function hexId(n) { return n.toString(16).toUpperCase().padStart(16, '0'); }

function receiptIds(n, k) {
  // [TLV id, text id] for the k-th receipt of message number n (hex string id).
  const hex = n.toString(16);
  const dec = BigInt('0x' + hex).toString(10);
  const style = idStyle === 'mixed' ? ['hex', 'decimal', 'padded', 'upper'][k % 4] : idStyle;
  switch (style) {
    case 'hex': return [hex.toUpperCase().padStart(16, '0'), dec];
    case 'decimal': return [dec, dec.padStart(20, '0')];
    case 'padded': return [hex.padStart(20, '0'), hex];
    case 'upper': return [hex.toUpperCase(), hex.toUpperCase().padStart(16, '0')];
    default: return [hex, hex];
  }
}

function stamp(d) {
  const p = (x) => String(x).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

function outcomeFor(destination) {
  if (destination.startsWith('1390000')) return { stat: 'UNDELIV', state: 5, err: '012' };
  if (destination.startsWith('1380000')) return { stat: 'EXPIRED', state: 3, err: '027' };
  return { stat: 'DELIVRD', state: 2, err: '000' };
}

let receiptCounter = 0;
function anyBound() {
  for (const s of sessions) if (s.bound && s.socket.writable) return s;
  return null;
}

// A receipt goes on the session of its submit while it is bound, else on any bound session
// (the ESME reconnected), else it is owed until the next bind.
function sendReceipt(session, r) {
  if (!session || !session.bound || !session.socket.writable) session = anyBound();
  if (!session) { owed.push(r); return; }
  const [tlvId, textId] = receiptIds(BigInt('0x' + r.message_id), receiptCounter++);
  const now = stamp(new Date());
  const text = `id:${textId} sub:001 dlvrd:${r.stat === 'DELIVRD' ? '001' : '000'} submit date:${now} ` +
    `done date:${now} stat:${r.stat} err:${r.err} Text:${(r.preview || '').slice(0, 10)}`;
  const pdu = {
    service_type: '', source_addr_ton: 1, source_addr_npi: 1, source_addr: r.destination,
    dest_addr_ton: 0, dest_addr_npi: 1, destination_addr: r.source, esm_class: 0x04,
    data_coding: 0, short_message: Buffer.from(text, 'latin1'),
    receipted_message_id: tlvId, message_state: r.state,
  };
  // Store and forward: a receipt is done when the ESME answered it with deliver_sm_resp ESME_ROK;
  // until then it is owed, and a session that closes first gives it back (sent on the next bind).
  const unanswered = session.unanswered || (session.unanswered = new Map());
  let seq = null;
  const ok = session.deliver_sm(pdu, (resp) => {
    unanswered.delete(seq);
    if (resp.command_status !== 0) { owed.push(r); return; }
    stats.receipts++;
    if (receiptsFd !== null) fs.writeSync(receiptsFd, JSON.stringify({ message_id: r.message_id, stat: r.stat }) + '\n');
  });
  if (!ok) { owed.push(r); return; }
  seq = session.sequence;
  unanswered.set(seq, r);
}

function preview(pdu) {
  const sm = pdu.short_message;
  return sm && typeof sm === 'object' && typeof sm.message === 'string' ? sm.message : '';
}

function handleSubmit(session, state, pdu) {
  stats.submits++;
  const sm = pdu.short_message || {};
  const raw = sm.raw || (Buffer.isBuffer(sm) ? sm : Buffer.alloc(0));
  const destination = String(pdu.destination_addr || '');
  const entry = { t: Date.now(), seq: pdu.sequence_number, source: pdu.source_addr, destination,
    data_coding: pdu.data_coding, esm_class: pdu.esm_class, short_message: raw.toString('hex'),
    registered_delivery: pdu.registered_delivery, status: 0, message_id: null };
  let status = 0;
  const now = Date.now();
  if (tps > 0) {
    // token bucket, burst of one second's worth / 10
    const burst = Math.max(1, Math.floor(tps / 10));
    state.tokens = Math.min(burst, state.tokens + ((now - state.last) / 1000) * tps);
    state.last = now;
    if (state.tokens < 1) status = 0x58; else state.tokens -= 1;
  }
  if (status === 0 && windowLimit > 0 && state.waiting >= windowLimit) status = 0x14;
  if (status === 0 && destination.startsWith('0000')) status = 0x0B;
  const key = `${destination}:${raw.toString('hex')}`;
  if (status === 0 && destination.startsWith('1370000') && !sysErrOnce.has(key)) {
    sysErrOnce.add(key);
    status = 0x08;
  }
  entry.status = status;
  if (status === 0x58) stats.throttled++;
  else if (status === 0x14) stats.queue_full++;
  else if (status !== 0) stats.rejected++;
  let messageId = null;
  if (status === 0) {
    messageId = hexId(nextId++);
    entry.message_id = messageId;
    stats.accepted++;
  }
  if (submitsFd !== null) fs.writeSync(submitsFd, JSON.stringify(entry) + '\n');
  const receipt = status === 0 && sendReceipts && pdu.registered_delivery
    ? { message_id: messageId, destination, source: String(pdu.source_addr || ''), preview: preview(pdu),
        ...outcomeFor(destination) }
    : null;
  const early = receipt && earlyFraction > 0 && Math.random() < earlyFraction;
  if (early) sendReceipt(session, receipt);
  const answer = () => {
    state.waiting--;
    if (status === 0) session.send(pdu.response({ message_id: messageId }));
    else session.send(pdu.response({ command_status: status }));
    if (receipt && !early) {
      if (receiptDelay > 0) setTimeout(() => sendReceipt(session, receipt), receiptDelay);
      else sendReceipt(session, receipt);
    }
  };
  state.waiting++;
  if (latency > 0 && status === 0) setTimeout(answer, latency);
  else answer();
}

const server = smpp.createServer((session) => {
  stats.sessions++;
  sessions.add(session);
  session.socket.setNoDelay(true);
  const state = { bound: false, tokens: Math.max(1, Math.floor(tps / 10)), last: Date.now(), waiting: 0 };
  session.on('error', () => {});
  session.on('close', () => {
    sessions.delete(session);
    session.bound = false;
    const back = session.unanswered ? [...session.unanswered.values()] : [];
    session.unanswered = null;
    for (const r of back) sendReceipt(null, r);
  });
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== systemId) {
      stats.refused++;
      session.send(pdu.response({ command_status: 0x0F }));
      setTimeout(() => session.close(), 50);
      return;
    }
    if (pdu.password !== password) {
      stats.refused++;
      session.send(pdu.response({ command_status: 0x0E }));
      setTimeout(() => session.close(), 50);
      return;
    }
    state.bound = true;
    session.bound = true;
    stats.binds++;
    session.send(pdu.response({ system_id: 'test-smsc' }));
    while (owed.length) sendReceipt(session, owed.shift());
  });
  for (const cmd of ['bind_transmitter', 'bind_receiver']) {
    session.on(cmd, (pdu) => { session.send(pdu.response({ command_status: 0x0D })); });
  }
  session.on('enquire_link', (pdu) => { stats.enquire_links++; session.send(pdu.response()); });
  session.on('unbind', (pdu) => {
    session.bound = false;
    session.send(pdu.response());
    setTimeout(() => session.close(), 10);
  });
  session.on('submit_sm', (pdu) => {
    if (!state.bound) { session.send(pdu.response({ command_status: 0x04 })); return; }
    handleSubmit(session, state, pdu);
  });
  session.on('deliver_sm_resp', () => {});
});

function sendMo(body) {
  const text = String(body.text || '');
  const parts = Math.max(1, Number(body.parts || 1));
  const bits = Number(body.ref_bits || 16);
  const reference = Number(body.reference || Math.floor(Math.random() * (bits === 8 ? 256 : 65536)));
  const units = Buffer.from(text, 'utf16le').length / 2;
  const per = Math.ceil(units / parts);
  const chunks = [];
  let chars = Array.from(text);
  while (chars.length) {
    let taken = 0, used = 0;
    while (taken < chars.length && used + chars[taken].length <= per) { used += chars[taken].length; taken++; }
    if (taken === 0) taken = 1;
    chunks.push(chars.slice(0, taken).join(''));
    chars = chars.slice(taken);
  }
  const order = body.reverse ? chunks.map((_, i) => chunks.length - 1 - i) : chunks.map((_, i) => i);
  const target = [...sessions][0];
  if (!target) return 0;
  for (const i of order) {
    const payload = Buffer.from(chunks[i], 'utf16le').swap16();
    let udh = Buffer.alloc(0);
    if (chunks.length > 1) {
      udh = bits === 8
        ? Buffer.from([5, 0, 3, reference & 0xff, chunks.length, i + 1])
        : Buffer.from([6, 8, 4, (reference >> 8) & 0xff, reference & 0xff, chunks.length, i + 1]);
    }
    target.deliver_sm({
      service_type: '', source_addr_ton: 1, source_addr_npi: 1, source_addr: String(body.source),
      dest_addr_ton: 0, dest_addr_npi: 1, destination_addr: String(body.destination || '10086'),
      esm_class: chunks.length > 1 ? 0x40 : 0, data_coding: 8,
      short_message: Buffer.concat([udh, payload]),
    }, () => {});
    stats.mo++;
  }
  return chunks.length;
}

if (opt.resume && opt.submits && opt.receipts) {
  const read = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => {
    try { return JSON.parse(l); } catch (e) { return null; }
  }).filter(Boolean) : []);
  const done = new Set(read(opt.receipts).map((r) => r.message_id));
  for (const s of read(opt.submits)) {
    if (s.status === 0 && s.message_id && s.registered_delivery && !done.has(s.message_id)) {
      owed.push({ message_id: s.message_id, destination: s.destination, source: s.source || '', preview: '',
        ...outcomeFor(s.destination) });
    }
  }
}

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`SMSC listening on 127.0.0.1:${port} (owed receipts: ${owed.length})\n`);
});

if (controlPort) {
  http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => {
      let answer = {};
      if (req.method === 'POST' && req.url === '/mo') answer = { parts: sendMo(JSON.parse(data || '{}')) };
      else if (req.method === 'POST' && req.url === '/drop') {
        for (const s of sessions) s.socket.destroy();
        answer = { dropped: true };
      } else answer = { ...stats, bound_sessions: sessions.size, owed: owed.length };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  }).listen(controlPort, '127.0.0.1');
}

process.on('SIGTERM', () => process.exit(0));
