/* UQCrowd-Log tracker: records what a worker does in a task page and sends it to this server.
 *
 * <script src="https://your-server/logger/fingerprint.js"></script>   (optional)
 * <script src="https://your-server/logger/logger.js"></script>
 *
 * Delivery: every event is kept in localStorage (one key per event) from the moment it is made
 * until the server has confirmed it, so a reload, the task's next page on the same origin, an
 * offline spell or a server answering 503 loses nothing: the next tracker to load on this
 * origin sends what the last one could not. Requests hold at most the server's batch limit and
 * 60 KiB (browsers refuse bigger keepalive requests and beacons); network errors, 429 and 5xx
 * are retried with backoff; the server answers per event, and an event it refuses is dropped
 * alone. The server keeps one document per event however often it is sent.
 *
 * Typing: the edits of a field are sent as one "typing" event per burst, not one event per key:
 * each edit's time (ms since the burst's first), its inputType and what it inserted. A burst ends
 * after 2 s without an edit or at 50 edits. The field's whole value is recorded only at an edit
 * boundary (a pause, a paste, the field's blur, the page hidden or left), so the last text of every
 * field is stored, and typing costs bytes, not the field's length at every key.
 *
 * Privacy: password fields are never recorded (no value, no length, no edits). Set
 * `window.uqcrowd_mask_values = true` before this script to record only the length of what is
 * typed, pasted or chosen anywhere on the page, or put `data-uqcrowd-mask` on a field (or on an
 * element around fields) to do so for those fields only.
 *
 * Old pages keep working: the globals send_log(log_type, sub_type, details) and session_id stay,
 * and exp_id_preDefined sets the experiment id. No dependencies (no jQuery). */
(function (global, document) {
  "use strict";

  var SERVER = /*SERVER_LIMITS*/null;   // filled in by the server that serves this script
  var MAX_BATCH = SERVER ? SERVER.maxBatch : 500;
  var MAX_BODY = SERVER ? SERVER.maxBytes : 131072;
  var REQUEST_BYTES = Math.min(60 * 1024, MAX_BODY); // keepalive fetch and sendBeacon refuse 64 KiB
  var FLUSH_EVENTS = 20;
  var FLUSH_MS = 2000;
  var MAX_QUEUE = 20000;        // beyond this, the oldest events are dropped (and counted)
  var MAX_BACKOFF_MS = 30000;
  var STORED_DAYS = 7;          // events kept for a later page no longer than this
  var SCROLL_MS = 250;
  var TYPING_PAUSE_MS = 2000;   // a pause this long ends a burst of typing (a boundary: the value is kept)
  var TYPING_EDITS = 50;        // a burst holds at most this many edits
  var PREFIX = "uqcrowd-log:e:";

  var script = document.currentScript;
  var endpoint = (script && script.src ? script.src : "/logger/logger.js").replace(/logger\.js(\?.*)?$/, "insert");
  if (global.uqcrowd_write_token) { endpoint += "?token=" + encodeURIComponent(global.uqcrowd_write_token); }

  function decode(text) {
    try { return decodeURIComponent(text.replace(/\+/g, " ")); } catch (err) { return text; }
  }

  function param(name) {
    var pairs = (global.location.search || "").replace(/^\?/, "").split("&");
    for (var i = 0; i < pairs.length; i++) {
      var eq = pairs[i].indexOf("=");
      var key = eq < 0 ? pairs[i] : pairs[i].slice(0, eq);
      if (decode(key) === name) { return eq < 0 ? "" : decode(pairs[i].slice(eq + 1)); }
    }
    return "";
  }

  function randomId() {
    if (global.crypto && global.crypto.randomUUID) { return global.crypto.randomUUID(); }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  }

  function storage() {
    try { return global.localStorage || null; } catch (err) { return null; }   // blocked by the browser
  }

  if (!global.session_id) { global.session_id = randomId(); }

  var store = storage();
  var sequence = 0;
  var dropped = 0;
  var queue = [];               // {key, body, bytes}: sent in order, removed once confirmed
  var sending = false;
  var backoff = 0;
  var timer = null;
  var ended = false;

  // ---- the persistent queue
  function wellFormed(key, value) {
    return typeof value === "string" && value.toWellFormed ? value.toWellFormed() : value;
  }

  function remember(key, body) {
    if (!store) { return; }
    try { store.setItem(key, body); } catch (err) { /* full or blocked: this event lives in memory only */ }
  }

  function forget(items) {
    if (!store) { return; }
    for (var i = 0; i < items.length; i++) {
      try { store.removeItem(items[i].key); } catch (err) { /* nothing to do */ }
    }
  }

  function utf8Bytes(text) {
    var bytes = 0;
    for (var i = 0; i < text.length; i++) {
      var code = text.charCodeAt(i);
      bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : (code >= 0xd800 && code < 0xe000) ? 2 : 3;
    }
    return bytes;
  }

  function enqueue(key, body) {
    queue.push({ key: key, body: body, bytes: utf8Bytes(body) });
    if (queue.length > MAX_QUEUE) {
      var lost = queue.splice(0, queue.length - MAX_QUEUE);
      dropped += lost.length;
      forget(lost);
    }
  }

  function restore() {
    // Events an earlier page on this origin made and the server has not confirmed: send them first.
    if (!store) { return; }
    var found = [];
    var oldest = Date.now() - STORED_DAYS * 86400000;
    for (var i = 0; i < store.length; i++) {
      var key = store.key(i);
      if (key && key.indexOf(PREFIX) === 0) { found.push(key); }
    }
    found.sort();
    for (var j = 0; j < found.length; j++) {
      var body = store.getItem(found[j]);
      var made = parseInt(found[j].slice(PREFIX.length), 36);
      if (body && made >= oldest) { enqueue(found[j], body); } else { store.removeItem(found[j]); }
    }
  }

  function experimentId() {
    return typeof global.exp_id_preDefined !== "undefined" ? String(global.exp_id_preDefined) : param("exp_id");
  }

  // Who and what this page is for, read once from the URL: MTurk (workerId, assignmentId, hitId,
  // turkSubmitTo), Prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID) or the page's own parameters.
  var identity = (function () {
    var who = {
      worker_id: param("workerId") || param("worker_id") || param("PROLIFIC_PID"),
      hit_id: param("hitId") || param("hit_id"),
      assignment_id: param("assignmentId") || param("assignment_id"),
      exp_id: experimentId()
    };
    var named = {
      turk_submit_to: param("turkSubmitTo"),
      prolific_pid: param("PROLIFIC_PID"),
      prolific_study_id: param("STUDY_ID"),
      prolific_session_id: param("SESSION_ID")
    };
    who.platform = named.prolific_pid ? "prolific" : param("assignmentId") || named.turk_submit_to ? "mturk" : "";
    for (var key in named) { if (named[key]) { who[key] = named[key]; } }
    return who;
  })();

  function makeEvent(logType, subType, details) {
    var content = { details: details || {} };
    content[logType] = subType;
    var event = {
      log_type: logType,
      sequence_number: sequence++,
      browser_time: new Date().toISOString(),
      session_id: global.session_id
    };
    for (var key in identity) { if (identity[key] || key.slice(-3) === "_id") { event[key] = identity[key]; } }
    event.content = content;
    return event;
  }

  function schedule(delay) {
    if (timer === null) { timer = global.setTimeout(function () { timer = null; flush(); }, delay); }
  }

  function send_log(logType, subType, details) {
    if (ended) { return; }      // after End Session (pagehide) until the page is shown again
    var event = makeEvent(logType, subType, details);
    var body = JSON.stringify(event, wellFormed);
    if (utf8Bytes(body) > MAX_BODY - 2) {             // too big for any request: keep its place, say why
      event.content = { details: { truncated: true, original_length: body.length } };
      event.content[logType] = subType;
      body = JSON.stringify(event, wellFormed);
    }
    // Keys sort by creation time, then session and sequence: restore() keeps the order.
    var key = PREFIX + ("0000000000" + Date.now().toString(36)).slice(-10) + ":" + event.session_id + ":" + event.sequence_number;
    remember(key, body);
    enqueue(key, body);
    if (queue.length >= FLUSH_EVENTS && backoff === 0) { flush(); } else { schedule(FLUSH_MS); }
  }

  // ---- sending
  // The oldest events that fit in one request: at most MAX_BATCH and REQUEST_BYTES (a single
  // bigger event goes alone, without keepalive, up to the server's body limit).
  function nextBatch() {
    var batch = [];
    var bytes = 2;
    for (var i = 0; i < queue.length && batch.length < MAX_BATCH; i++) {
      if (batch.length && bytes + queue[i].bytes + 1 > REQUEST_BYTES) { break; }
      batch.push(queue[i]);
      bytes += queue[i].bytes + 1;
    }
    batch.bytes = bytes;
    return batch;
  }

  function bodyOf(batch) {
    return "[" + batch.map(function (item) { return item.body; }).join(",") + "]";
  }

  function confirmed(batch) {
    var keys = {};
    for (var i = 0; i < batch.length; i++) { keys[batch[i].key] = true; }
    queue = queue.filter(function (item) { return !keys[item.key]; });
    forget(batch);
  }

  function retryLater() {
    backoff = Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : 1000);
    schedule(backoff + Math.floor(Math.random() * 250));
  }

  function flush() {
    if (sending || queue.length === 0) { return; }
    var batch = nextBatch();
    sending = true;
    global.fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "text/plain" },   // a "simple" request: no CORS preflight
      body: bodyOf(batch),
      keepalive: batch.bytes <= REQUEST_BYTES,      // still delivered if the page goes away meanwhile
      credentials: "omit"
    }).then(function (response) {
      return response.json().then(function (answer) { return answer; }, function () { return {}; }).then(function (answer) {
        sending = false;
        handle(batch, response.status, answer);
      });
    }, function () {
      sending = false;
      retryLater();
    });
  }

  function handle(batch, status, answer) {
    if (status === 429 || status >= 500) { retryLater(); return; }
    if ((status === 413 || (status === 400 && typeof answer.accepted !== "number")) && batch.length > 1) {
      MAX_BATCH = Math.max(1, Math.floor(batch.length / 2));   // the server's limits are smaller than we knew
      backoff = 0;
      schedule(0);
      return;
    }
    // 2xx: stored (or, per event, refused and kept aside by the server). Any other answer for a
    // single event or this origin: sending it again would not help.
    if (status >= 300 && global.console) { global.console.warn("uqcrowd-log: the server refused events:", status, answer.error || ""); }
    backoff = 0;
    confirmed(batch);
    if (queue.length) { schedule(0); }
  }

  function flushWithBeacon() {
    // The page is going away: hand the oldest events that fit to the browser (its keepalive quota
    // of 64 KiB is shared by every beacon and by a fetch still in flight). Every event stays stored
    // until a page on this origin sees the server confirm it; a repeat is stored once.
    if (sending || !queue.length || !global.navigator.sendBeacon) { return; }
    var batch = nextBatch();
    if (batch.bytes <= REQUEST_BYTES) {
      global.navigator.sendBeacon(endpoint, new Blob([bodyOf(batch)], { type: "text/plain" }));
    }
  }

  // ---- what is recorded
  function describe(target) {
    if (!target || !target.tagName) { return {}; }
    return {
      tag: target.tagName.toLowerCase(),
      id: target.id || "",
      name: target.name || "",
      class_name: typeof target.className === "string" ? target.className : ""
    };
  }

  function withTarget(target, extra) {
    var details = describe(target);
    for (var key in extra) { if (Object.prototype.hasOwnProperty.call(extra, key)) { details[key] = extra[key]; } }
    return details;
  }

  function isPassword(target) {
    return !!target && String(target.type || "").toLowerCase() === "password";
  }

  function masked(target) {
    if (global.uqcrowd_mask_values === true) { return true; }
    return !!(target && target.closest && target.closest("[data-uqcrowd-mask]"));
  }

  // What a field holds, as the page's privacy settings allow: {value, value_length}, or less.
  function contents(target, text, name) {
    var out = {};
    if (isPassword(target)) { out.masked = "password"; return out; }
    out[name + "_length"] = text.length;
    if (masked(target)) { out.masked = "length"; } else { out[name] = text; }
    return out;
  }

  // ---- typing: one event per burst of edits in a field
  var typing = null;            // {target, started, edits, typed, deletions, timer}

  function edited(e) {
    var target = e.target;
    if (!target || isPassword(target)) { return; }
    if (typing && typing.target !== target) { endTyping("field"); }
    if (!typing) {
      typing = { target: target, started: Date.now(), edits: [], typed: 0, deletions: 0, timer: null };
    }
    var kind = e.inputType || "";
    var data = typeof e.data === "string" ? e.data : null;
    if (kind === "insertText" && data !== null) { typing.typed += data.length; }
    if (kind.indexOf("delete") === 0) { typing.deletions += 1; }
    typing.edits.push([Date.now() - typing.started, kind, data !== null && masked(target) ? data.length : data]);
    global.clearTimeout(typing.timer);
    if (typing.edits.length >= TYPING_EDITS) { endTyping(""); return; }   // stays open, timer set again
    typing.timer = global.setTimeout(function () { endTyping("pause"); }, TYPING_PAUSE_MS);
  }

  // The burst as one event; at a boundary ("pause", "paste", "blur", "hidden", "field") with the
  // field's whole value (or its length, masked). A burst cut at TYPING_EDITS goes without it, and the
  // field stays open for the next edits or its boundary, which then brings the value (with no edit).
  function endTyping(boundary) {
    if (!typing) { return; }
    var burst = typing;
    global.clearTimeout(burst.timer);
    if (boundary) {
      typing = null;
    } else {
      typing = { target: burst.target, started: Date.now(), edits: [], typed: 0, deletions: 0, timer: null };
      typing.timer = global.setTimeout(function () { endTyping("pause"); }, TYPING_PAUSE_MS);
    }
    var details = {
      started: new Date(burst.started).toISOString(),
      edits: burst.edits,
      typed_chars: burst.typed,
      deletions: burst.deletions
    };
    if (boundary) {
      details.boundary = boundary;
      var value = "value" in burst.target ? String(burst.target.value) : String(burst.target.textContent || "");
      details = Object.assign(details, contents(burst.target, value, "value"));
    }
    send_log("keyboard_event", "typing", withTarget(burst.target, details));
  }

  function screenDetails() {
    return {
      screen_width: global.screen ? global.screen.width : 0,
      screen_height: global.screen ? global.screen.height : 0,
      window_width: global.innerWidth,
      window_height: global.innerHeight
    };
  }

  function listen(target, type, handler, options) { target.addEventListener(type, handler, options || true); }

  function end() {
    if (ended) { return; }
    // How many events this page made (End Session included): the completeness check compares it
    // with what was stored. Nothing is recorded after it (visibilitychange follows pagehide).
    send_log("message", "End Session", { events: sequence + 1, dropped: dropped });
    ended = true;
  }

  function start() {
    restore();
    var details = screenDetails();
    details.url = global.location.href;
    details.referrer = document.referrer;
    send_log("message", "Start Session", details);
    if (typeof global.uqcrowdFingerprint === "function") {
      var fingerprint = global.uqcrowdFingerprint();
      send_log("browser_event", "fingerprint", { hash: fingerprint.hash, components: fingerprint.components });
    }

    ["click", "dblclick", "contextmenu"].forEach(function (type) {
      listen(document, type, function (e) {
        send_log("mouse_event", type, withTarget(e.target, {
          event_x: e.pageX, event_y: e.pageY, client_x: e.clientX, client_y: e.clientY, button: e.button
        }));
      });
    });
    ["focus", "blur"].forEach(function (type) {
      listen(document, type, function (e) {
        if (type === "blur" && typing && e.target === typing.target) { endTyping("blur"); }
        if (e.target && e.target.tagName) { send_log("html_event", type, describe(e.target)); }
      });
      listen(global, type, function (e) { if (e.target === global) { send_log("browser_event", "window_" + type, {}); } }, false);
    });
    listen(document, "input", edited);
    ["paste", "copy", "cut"].forEach(function (type) {
      listen(document, type, function (e) {
        if (type === "paste") { endTyping("paste"); }
        var text = "";
        try { text = type === "paste" ? e.clipboardData.getData("text") : String(global.getSelection()); } catch (err) { text = ""; }
        send_log("keyboard_event", type, withTarget(e.target, contents(e.target, text, "text")));
      });
    });
    listen(document, "change", function (e) {
      var target = e.target || {};
      var value = "value" in target ? String(target.value) : "";
      send_log("html_event", target.tagName === "SELECT" ? "select_change" : "change",
        withTarget(target, Object.assign({ checked: !!target.checked }, contents(target, value, "value"))));
    });
    var lastScroll = 0;
    listen(global, "scroll", function () {
      var now = Date.now();
      if (now - lastScroll < SCROLL_MS) { return; }
      lastScroll = now;
      send_log("browser_event", "scroll", { scroll_x: global.scrollX, scroll_y: global.scrollY });
    }, { passive: true });
    listen(global, "resize", function () { send_log("browser_event", "resize", screenDetails()); }, false);
    listen(global, "online", function () { backoff = 0; flush(); }, false);
    listen(document, "visibilitychange", function () {
      if (document.visibilityState === "hidden") { endTyping("hidden"); }
      send_log("browser_event", "visibility_" + document.visibilityState, {});
      if (document.visibilityState === "hidden") { flushWithBeacon(); }
    }, false);
    listen(global, "pagehide", function () { endTyping("hidden"); end(); flushWithBeacon(); }, false);
    listen(global, "pageshow", function (e) { if (e.persisted) { ended = false; } }, false);
    if (queue.length) { schedule(0); }
  }

  global.send_log = send_log;
  global.uqcrowdLogger = {
    flush: flush,
    endpoint: endpoint,
    pending: function () { return queue.length; },
    limits: { maxBatch: MAX_BATCH, maxBytes: MAX_BODY, requestBytes: REQUEST_BYTES }
  };
  start();
})(window, document);
