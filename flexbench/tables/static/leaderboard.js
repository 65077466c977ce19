// Sortable tables for the static FlexBench leaderboard (no dependencies, no network).
// Click a header to sort by that column; click again to reverse. Numeric cells sort by
// their data-value; cells without one (missing results) always go last. A table with one
// <tbody> per group (the boards' kinds) is sorted within each group; a group's heading row
// (tr.group) stays first.
// The page URL may carry #sort=<table id>:<column index>:<asc|desc> to open sorted.
(function () {
  "use strict";
  function key(cell) {
    var v = cell.getAttribute("data-value");
    return v === null || v === "" ? null : Number(v);
  }
  function sortBody(body, col, dir) {
    var all = Array.prototype.slice.call(body.rows);
    var groups = all.filter(function (r) { return r.classList.contains("group"); });
    var rows = all.filter(function (r) { return !r.classList.contains("group"); });
    rows.sort(function (a, b) {
      var ka = key(a.cells[col]), kb = key(b.cells[col]);
      if (ka === null && kb === null) {
        return a.cells[col].textContent.localeCompare(b.cells[col].textContent) * (dir === "asc" ? 1 : -1);
      }
      if (ka === null) { return 1; }
      if (kb === null) { return -1; }
      return dir === "asc" ? ka - kb : kb - ka;
    });
    groups.concat(rows).forEach(function (r) { body.appendChild(r); });
  }
  function sortTable(table, col, dir) {
    Array.prototype.forEach.call(table.tBodies, function (body) { sortBody(body, col, dir); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === col ? (dir === "asc" ? "ascending" : "descending") : "none");
    });
  }
  function setup() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        th.setAttribute("aria-sort", "none");
        th.addEventListener("click", function () {
          var dir = th.getAttribute("aria-sort") === "descending" ? "asc" : "desc";
          sortTable(table, i, dir);
        });
      });
    });
    var m = /^#sort=([^:]+):(\d+):(asc|desc)$/.exec(window.location.hash);
    if (m) {
      var target = document.getElementById(m[1]);
      if (target && target.classList.contains("sortable")) { sortTable(target, Number(m[2]), m[3]); }
    }
    document.documentElement.setAttribute("data-sortable", "ready");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
