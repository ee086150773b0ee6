// datagen browse: subject-count filters on the index; overlay toggles and keyboard navigation on
// a sample page. Vanilla and file://-safe: no fetch(), no modules, everything is in the page.
(function () {
  "use strict";
  var STORE = "datagen-browse-layers";

  // Index: show only the cards whose subject count matches the pressed button; the choice is
  // kept in the URL fragment so "back" from a sample page returns to the same filter, and the
  // links to the other index pages carry it, so the filter holds while paging.
  function initFilters() {
    var buttons = Array.prototype.slice.call(document.querySelectorAll("button[data-subjects]"));
    if (!buttons.length) return;
    var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
    var pages = Array.prototype.slice.call(document.querySelectorAll("a[data-page]"));
    var shown = document.getElementById("shown");
    var known = buttons.map(function (b) { return b.dataset.subjects; });
    function apply(n) {
      if (known.indexOf(n) < 0) n = "all";
      var count = 0;
      cards.forEach(function (card) {
        card.hidden = !(n === "all" || card.dataset.subjects === n);
        if (!card.hidden) count += 1;
      });
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.subjects === n)); });
      pages.forEach(function (a) {
        a.setAttribute("href", a.getAttribute("href").split("#")[0] + (n === "all" ? "" : "#subjects=" + n));
      });
      if (shown) shown.textContent = String(count);
    }
    function fromHash() {
      var m = /subjects=(\w+)/.exec(location.hash);
      apply(m ? m[1] : "all");
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", function () {
        // replace(): a fragment-only change, no reload and no extra history entry per click.
        location.replace("#subjects=" + b.dataset.subjects);
        apply(b.dataset.subjects);
      });
    });
    window.addEventListener("hashchange", fromHash);
    fromHash();
    // Arrow keys turn the index pages, as they step through samples on a sample page.
    document.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
      var link = document.querySelector(e.key === "ArrowLeft" ? ".pages a[rel=prev]" : ".pages a[rel=next]");
      if (link) window.location.href = link.href;
    });
  }

  // localStorage can be unavailable (privacy settings, some browsers on file://): then the
  // toggles just start from the page's defaults.
  function load() {
    try { return JSON.parse(window.localStorage.getItem(STORE) || "{}") || {}; } catch (e) { return {}; }
  }
  function save(state) {
    try { window.localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* not kept */ }
  }

  // Sample page: each checkbox shows or hides its pre-rendered layer; choices carry over to the
  // next sample so one can flip through samples with, say, only the 3D boxes on.
  function initLayers() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-layer]"));
    if (!boxes.length) return;
    var state = load();
    boxes.forEach(function (box) {
      var name = box.dataset.layer;
      var layer = document.getElementById("layer-" + name);
      if (typeof state[name] === "boolean") box.checked = state[name];
      function sync() { if (layer) layer.hidden = !box.checked; }
      box.addEventListener("change", function () {
        sync();
        state[name] = box.checked;
        save(state);
      });
      sync();
    });
    document.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey || (e.target && e.target.tagName === "INPUT")) return;
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        var link = document.querySelector(e.key === "ArrowLeft" ? "a[rel=prev]" : "a[rel=next]");
        if (link) window.location.href = link.href;
        return;
      }
      boxes.forEach(function (box) {
        if (box.dataset.key === e.key) box.click();
      });
    });
  }

  initFilters();
  initLayers();
})();
