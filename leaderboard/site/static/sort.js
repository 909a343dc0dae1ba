// Sortable tables for the leaderboard site: no dependencies, no network, works from file://.
//
// A table with class "sortable" has one <button class="sort"> per header cell. Clicking it sorts
// the body rows by that column, ascending first, then toggling; the header's aria-sort says the
// current order. A cell's data-sort attribute, when present, is the value sorted on (the page
// writes raw numbers there); otherwise its text. A column whose values are all numbers sorts
// numerically, any other column in a numeric-aware collation ("entry 2" before "entry 10").
// Empty values stay last in both directions; ties keep their previous order.
"use strict";

(function () {
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) {
      return "";
    }
    var value = cell.getAttribute("data-sort");
    return (value === null ? cell.textContent : value).trim();
  }

  function isNumber(value) {
    return value !== "" && isFinite(Number(value));
  }

  function sortBy(table, index, header) {
    var direction = header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var h = 0; h < headers.length; h += 1) {
      headers[h].setAttribute("aria-sort", "none");
    }
    header.setAttribute("aria-sort", direction);

    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, position) {
      return { row: row, value: cellValue(row, index), position: position };
    });
    var numeric = keyed.every(function (k) {
      return k.value === "" || isNumber(k.value);
    });
    var sign = direction === "ascending" ? 1 : -1;
    keyed.sort(function (a, b) {
      if (a.value === "" || b.value === "") {
        return (a.value === "") - (b.value === "") || a.position - b.position;
      }
      var order = numeric ? Number(a.value) - Number(b.value) : collator.compare(a.value, b.value);
      return sign * order || a.position - b.position;
    });
    keyed.forEach(function (k) {
      body.appendChild(k.row);
    });
  }

  function init() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      if (!table.tHead || !table.tBodies.length) {
        return;
      }
      var headers = table.tHead.rows[0].cells;
      Array.prototype.forEach.call(headers, function (header, index) {
        var button = header.querySelector("button.sort");
        if (button) {
          button.addEventListener("click", function () {
            sortBy(table, index, header);
          });
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
