// Tables: every row the page carries takes part in sorting and filtering; the
// first PAGE matching rows show until "show all". Links with data-filter fill
// the target table's filter box. Timed charts share a crosshair.
(function () {
  "use strict";
  var PAGE = 25;

  function cellKey(row, column, numeric) {
    var cell = row.cells[column];
    var value = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    return numeric ? parseFloat(value) || 0 : value.toLowerCase();
  }

  function inBin(row, bin) {
    return (" " + (row.getAttribute("data-bins") || "") + " ").indexOf(" " + bin + " ") >= 0;
  }

  function setUp(table) {
    var body = table.tBodies[0];
    var state = { query: "", all: false, bin: null, label: "" };
    var input = document.querySelector('input[data-table="' + table.id + '"]');
    var counter = document.querySelector('[data-count="' + table.id + '"]');
    var more = document.createElement("button");
    more.type = "button";
    more.className = "showall";
    table.parentNode.parentNode.insertBefore(more, table.parentNode.nextSibling);

    function apply() {
      var shown = 0, matching = 0;
      Array.prototype.forEach.call(body.rows, function (row) {
        var match = state.bin !== null ? inBin(row, state.bin)
          : !state.query || row.textContent.toLowerCase().indexOf(state.query) >= 0;
        matching += match;
        row.hidden = !match || (!state.all && shown >= PAGE);
        shown += match && !row.hidden;
      });
      if (counter) {
        counter.textContent = matching + " of " + body.rows.length + " rows match" +
          (state.bin !== null ? " (groups of the " + state.label + ")" : "");
      }
      more.hidden = matching <= PAGE;
      more.textContent = state.all ? "show the first " + PAGE : "show all " + matching;
    }
    more.addEventListener("click", function () { state.all = !state.all; apply(); });
    if (input) {
      input.addEventListener("input", function () {
        state.bin = null;
        state.query = input.value.trim().toLowerCase();
        apply();
      });
    }
    table.filterBy = function (text) {
      if (input) { input.value = text; }
      state.bin = null;
      state.query = text.trim().toLowerCase();
      apply();
    };
    // a histogram bar: the rows whose data-bins name it (editing the box ends it)
    table.filterByBin = function (bin, label) {
      if (input) { input.value = label; }
      state.bin = bin;
      state.label = label;
      apply();
    };
    table.querySelectorAll("th button").forEach(function (button) {
      var th = button.parentNode;
      button.addEventListener("click", function () {
        var column = th.cellIndex;
        var numeric = th.classList.contains("n");
        var down = th.getAttribute("aria-sort") !== "descending";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellKey(a, column, numeric), y = cellKey(b, column, numeric);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return down ? -order : order;
        });
        table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", down ? "descending" : "ascending");
        rows.forEach(function (row) { body.appendChild(row); });
        apply();
      });
    });
    apply();
  }

  document.querySelectorAll("table.sortable").forEach(setUp);

  document.querySelectorAll("a[data-bin]").forEach(function (link) {
    link.addEventListener("click", function () {
      var table = document.getElementById(link.getAttribute("href").slice(1));
      if (table && table.filterByBin) {
        table.filterByBin(link.getAttribute("data-bin"), link.getAttribute("data-label"));
      }
    });
  });

  document.querySelectorAll("a[data-filter]").forEach(function (link) {
    link.addEventListener("click", function () {
      var table = document.getElementById(link.getAttribute("href").slice(1));
      if (table && table.filterBy) { table.filterBy(link.getAttribute("data-filter")); }
    });
  });

  // one crosshair across every timed chart: same clock time, same column
  var charts = document.querySelectorAll("figure.timed svg");
  function place(fraction, label) {
    charts.forEach(function (svg) {
      var left = parseFloat(svg.getAttribute("data-left"));
      var x = fraction === null ? -10 : left + fraction * parseFloat(svg.getAttribute("data-width"));
      var line = svg.querySelector("line.cursor"), text = svg.querySelector("text.cursor");
      line.setAttribute("x1", x);
      line.setAttribute("x2", x);
      text.setAttribute("x", fraction === null ? -100 : x + 4);
      text.textContent = label;
    });
  }
  charts.forEach(function (svg) {
    svg.addEventListener("pointermove", function (event) {
      var box = svg.getBoundingClientRect();
      var scale = box.width / svg.viewBox.baseVal.width;
      var left = parseFloat(svg.getAttribute("data-left")), width = parseFloat(svg.getAttribute("data-width"));
      var fraction = ((event.clientX - box.left) / scale - left) / width;
      if (fraction < 0 || fraction > 1) { place(null, ""); return; }
      var start = parseFloat(svg.getAttribute("data-start")), end = parseFloat(svg.getAttribute("data-end"));
      var when = new Date((start + fraction * (end - start)) * 1000);
      place(fraction, when.toISOString().slice(11, 19) + " UTC");
    });
    svg.addEventListener("pointerleave", function () { place(null, ""); });
  });
})();
