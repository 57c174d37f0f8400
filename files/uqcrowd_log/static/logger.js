/* UQCrowd-Log tracker: records what a worker does in a task page and sends it to this server.
 *
 * <script src="https://your-server/logger/fingerprint.js"></script>   (optional)
 * <script src="https://your-server/logger/logger.js"></script>
 *
 * Events go to the /logger/insert beside this script's own URL, in batches (every FLUSH_EVENTS
 * events or FLUSH_MS), with navigator.sendBeacon when the page is hidden, and are retried with
 * backoff on 503 or network errors. Old pages keep working: the globals send_log(log_type,
 * sub_type, details) and session_id stay, and exp_id_preDefined sets the experiment id.
 * No dependencies (no jQuery). */
(function (global, document) {
  "use strict";

  var FLUSH_EVENTS = 20;
  var FLUSH_MS = 2000;
  var MAX_BATCH = 500;          // the server's default limit per request
  var MAX_QUEUE = 5000;         // beyond this, the oldest events are dropped (the page is offline)
  var MAX_BACKOFF_MS = 30000;
  var SCROLL_MS = 250;

  var script = document.currentScript;
  var endpoint = (script && script.src ? script.src : "/logger/logger.js").replace(/logger\.js(\?.*)?$/, "insert");

  function param(name) {
    var match = new RegExp("[?&]" + name + "=([^&#]*)").exec(global.location.search);
    return match ? decodeURIComponent(match[1].replace(/\+/g, " ")) : "";
  }

  function randomId() {
    if (global.crypto && global.crypto.randomUUID) { return global.crypto.randomUUID(); }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  }

  if (!global.session_id) { global.session_id = randomId(); }

  var sequence = 0;
  var queue = [];
  var sending = false;
  var backoff = 0;
  var timer = null;
  var ended = false;

  function experimentId() {
    return typeof global.exp_id_preDefined !== "undefined" ? String(global.exp_id_preDefined) : param("exp_id");
  }

  function makeEvent(logType, subType, details) {
    var content = { details: details || {} };
    content[logType] = subType;
    return {
      log_type: logType,
      sequence_number: sequence++,
      browser_time: new Date().toISOString(),
      session_id: global.session_id,
      worker_id: param("workerId") || param("worker_id"),
      hit_id: param("hitId") || param("hit_id"),
      assignment_id: param("assignmentId") || param("assignment_id"),
      exp_id: experimentId(),
      content: content
    };
  }

  function schedule(delay) {
    if (timer === null) { timer = global.setTimeout(function () { timer = null; flush(); }, delay); }
  }

  function send_log(logType, subType, details) {
    queue.push(makeEvent(logType, subType, details));
    if (queue.length > MAX_QUEUE) { queue.splice(0, queue.length - MAX_QUEUE); }
    if (queue.length >= FLUSH_EVENTS && backoff === 0) { flush(); } else { schedule(FLUSH_MS); }
  }

  function retryLater(batch) {
    queue = batch.concat(queue);
    backoff = Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : 1000);
    schedule(backoff + Math.floor(Math.random() * 250));
  }

  function flush() {
    if (sending || queue.length === 0) { return; }
    var batch = queue.splice(0, MAX_BATCH);
    sending = true;
    global.fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "text/plain" },   // a "simple" request: no CORS preflight
      body: JSON.stringify(batch),
      keepalive: true,
      credentials: "omit"
    }).then(function (response) {
      sending = false;
      if (response.status === 503 || response.status === 429 || response.status >= 500) {
        retryLater(batch);
      } else {
        backoff = 0;                                // 2xx, or 4xx: sending again would not help
        if (queue.length) { schedule(0); }
      }
    }, function () {
      sending = false;
      retryLater(batch);
    });
  }

  function flushWithBeacon() {
    if (!queue.length) { return; }
    var batch = queue.splice(0, MAX_BATCH);
    var body = new Blob([JSON.stringify(batch)], { type: "text/plain" });
    if (!(global.navigator.sendBeacon && global.navigator.sendBeacon(endpoint, body))) {
      queue = batch.concat(queue);
      flush();
    }
  }

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

  function screenDetails() {
    return {
      screen_width: global.screen ? global.screen.width : 0,
      screen_height: global.screen ? global.screen.height : 0,
      window_width: global.innerWidth,
      window_height: global.innerHeight
    };
  }

  function listen(target, type, handler, options) { target.addEventListener(type, handler, options || true); }

  function start() {
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
      listen(document, type, function (e) { if (e.target && e.target.tagName) { send_log("html_event", type, describe(e.target)); } });
      listen(global, type, function (e) { if (e.target === global) { send_log("browser_event", "window_" + type, {}); } }, false);
    });
    listen(document, "input", function (e) {
      var value = e.target && "value" in e.target ? String(e.target.value) : "";
      send_log("keyboard_event", "input", withTarget(e.target, { input_type: e.inputType || "", value_length: value.length, value: value }));
    });
    ["paste", "copy", "cut"].forEach(function (type) {
      listen(document, type, function (e) {
        var text = "";
        try { text = type === "paste" ? e.clipboardData.getData("text") : String(global.getSelection()); } catch (err) { text = ""; }
        send_log("keyboard_event", type, withTarget(e.target, { text_length: text.length, text: text }));
      });
    });
    listen(document, "change", function (e) {
      var target = e.target || {};
      send_log("html_event", target.tagName === "SELECT" ? "select_change" : "change",
        withTarget(target, { value: "value" in target ? String(target.value) : "", checked: !!target.checked }));
    });
    var lastScroll = 0;
    listen(global, "scroll", function () {
      var now = Date.now();
      if (now - lastScroll < SCROLL_MS) { return; }
      lastScroll = now;
      send_log("browser_event", "scroll", { scroll_x: global.scrollX, scroll_y: global.scrollY });
    }, { passive: true });
    listen(global, "resize", function () { send_log("browser_event", "resize", screenDetails()); }, false);
    listen(document, "visibilitychange", function () {
      send_log("browser_event", "visibility_" + document.visibilityState, {});
      if (document.visibilityState === "hidden") { flushWithBeacon(); }
    }, false);
    listen(global, "pagehide", function () {
      if (!ended) { ended = true; send_log("message", "End Session", {}); }
      flushWithBeacon();
    }, false);
  }

  global.send_log = send_log;
  global.uqcrowdLogger = { flush: flush, endpoint: endpoint };
  start();
})(window, document);
