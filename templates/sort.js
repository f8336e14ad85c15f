// Click a column header to sort its table (numbers by value, text A-Z); again to reverse.
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var numeric = th.classList.contains("n");
      var down = th.getAttribute("aria-sort") !== "descending";
      var key = function (row) {
        var cell = row.cells[column];
        var value = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
        return numeric ? parseFloat(value) || 0 : value.toLowerCase();
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = x < y ? -1 : x > y ? 1 : 0;
        return down ? -order : order;
      });
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
