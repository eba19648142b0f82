/* cartrecover on-site nudge. Paste on the shop's pages:
 *   <script src="https://recover.example.com/v1/nudge.js" data-write-key="YOUR_WRITE_KEY" async></script>
 * It reads Segment's anonymous id (localStorage or the ajs_anonymous_id cookie), asks /v1/nudge for the
 * visitor's offer and shows a dismissible banner with the link back to the cart. No dependencies.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) return;
  var key = script.getAttribute("data-write-key");
  var base = script.src.replace(/\/v1\/nudge\.js(\?.*)?$/, "");
  var DISMISSED = "cartrecover_nudge_dismissed";

  function unquote(value) {
    if (!value) return null;
    try { value = decodeURIComponent(value); } catch (e) { /* keep it as it is */ }
    try {
      var parsed = JSON.parse(value); // analytics.js stores the id JSON-encoded
      if (typeof parsed === "string") return parsed;
    } catch (e) { /* a bare id */ }
    return value;
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split(/;\s*/) : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq > 0 && parts[i].slice(0, eq) === name) return parts[i].slice(eq + 1);
    }
    return null;
  }

  function anonymousId() {
    var stored = null;
    try { stored = window.localStorage.getItem("ajs_anonymous_id"); } catch (e) { /* storage blocked */ }
    return unquote(stored) || unquote(cookie("ajs_anonymous_id"));
  }

  function dismissed(cartId) {
    try { return window.sessionStorage.getItem(DISMISSED) === cartId; } catch (e) { return false; }
  }

  function show(offer) {
    if (!offer || !/^https?:\/\//i.test(offer.restore_url) || dismissed(offer.cart_id)) return;
    var bar = document.createElement("div");
    bar.setAttribute("role", "region");
    bar.setAttribute("aria-label", "Your cart");
    bar.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;display:flex;gap:1em;" +
      "align-items:center;justify-content:center;padding:.75em 1em;background:#111;color:#fff;" +
      "font:15px/1.4 system-ui,sans-serif;box-shadow:0 -2px 8px rgba(0,0,0,.2)";
    var text = document.createElement("span");
    var items = offer.items === 1 ? "1 item" : offer.items + " items";
    text.textContent = "You left " + items + " in your cart." +
      (offer.coupon ? " Use code " + offer.coupon + (offer.percent ? " for " + offer.percent + "% off." : ".") : "");
    var link = document.createElement("a");
    link.href = offer.restore_url;
    link.textContent = "Back to your cart";
    link.style.cssText = "color:#fff;font-weight:600;text-decoration:underline";
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    close.style.cssText = "background:none;border:0;color:#fff;font-size:1.4em;cursor:pointer;line-height:1";
    close.onclick = function () {
      try { window.sessionStorage.setItem(DISMISSED, offer.cart_id); } catch (e) { /* fine: gone for this view */ }
      bar.parentNode && bar.parentNode.removeChild(bar);
    };
    bar.appendChild(text);
    bar.appendChild(link);
    bar.appendChild(close);
    document.body.appendChild(bar);
  }

  function start() {
    var id = anonymousId();
    if (!key || !id) return;
    var url = base + "/v1/nudge?writeKey=" + encodeURIComponent(key) + "&anonymousId=" + encodeURIComponent(id);
    fetch(url, { credentials: "omit" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { if (body) show(body.offer); })
      .catch(function () { /* no nudge is better than a broken page */ });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
