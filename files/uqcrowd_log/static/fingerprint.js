/* UQCrowd-Log browser fingerprint: a stable, non-unique hash of what the browser tells about itself.
 * Defines window.uqcrowdFingerprint() -> {hash: "<hex>", components: {...}}. No dependencies. */
(function (global) {
  "use strict";

  function fnv1a(text) {
    var hash = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return ("0000000" + hash.toString(16)).slice(-8);
  }

  function components() {
    var nav = global.navigator || {};
    var scr = global.screen || {};
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    return {
      user_agent: nav.userAgent || "",
      language: nav.language || "",
      languages: (nav.languages || []).join(","),
      platform: nav.platform || "",
      hardware_concurrency: nav.hardwareConcurrency || 0,
      device_memory: nav.deviceMemory || 0,
      touch_points: nav.maxTouchPoints || 0,
      cookies: !!nav.cookieEnabled,
      screen: [scr.width, scr.height, scr.colorDepth].join("x"),
      pixel_ratio: global.devicePixelRatio || 1,
      timezone: zone,
      timezone_offset: new Date().getTimezoneOffset()
    };
  }

  global.uqcrowdFingerprint = function () {
    var parts = components();
    var keys = Object.keys(parts).sort();
    var text = keys.map(function (k) { return k + "=" + parts[k]; }).join(";");
    return { hash: fnv1a(text) + fnv1a(text.split("").reverse().join("")), components: parts };
  };
})(window);
