// Show precomputed neighbours in the static retrieval demos that
// r2ska.widgets.static_retrieval_html writes. Every demo fragment inlines this
// script after its own elements. Each run sets up the demos on the page that no
// earlier run has set up, so a demo also works when a front end inserts its HTML
// later and then runs the script.
(function () {
  "use strict";

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function setUp(root) {
    var data = JSON.parse(root.querySelector("script.r2ska-retrieval-data").textContent);
    var select = root.querySelector("select");
    var svg = root.querySelector("svg");
    var body = root.querySelector("tbody");
    var queryName = root.querySelector(".r2ska-retrieval-query");
    var queryLabel = root.querySelector(".r2ska-retrieval-query-label");
    var paths = {};
    root.querySelectorAll("path[data-chip]").forEach(function (path) {
      paths[path.getAttribute("data-chip")] = path;
    });

    function show() {
      var query = Number(select.value);
      var neighbours = data.neighbours[query];
      root.querySelectorAll("path.r2ska-query, path.r2ska-neighbour").forEach(function (path) {
        path.setAttribute("class", "");
      });
      // Outlined footprints move to the end of the SVG so that no other chip covers them.
      neighbours.forEach(function (index) {
        paths[index].setAttribute("class", "r2ska-neighbour");
        svg.appendChild(paths[index]);
      });
      paths[query].setAttribute("class", "r2ska-query");
      svg.appendChild(paths[query]);

      queryName.textContent = data.names[query];
      queryLabel.textContent = data.labels ? " (" + data.labels[query] + ")" : "";
      body.textContent = "";
      neighbours.forEach(function (index, rank) {
        var row = document.createElement("tr");
        cell(row, String(rank + 1));
        cell(row, data.names[index]);
        if (data.labels) {
          cell(row, data.labels[index]);
        }
        cell(row, data.scores[query][rank]);
        body.appendChild(row);
      });
    }

    select.addEventListener("change", show);
    svg.addEventListener("click", function (event) {
      var chip = event.target.getAttribute && event.target.getAttribute("data-chip");
      if (chip !== null && chip !== undefined) {
        select.value = chip;
        show();
      }
    });
    // A browser may restore the selection when the reader comes back to the page.
    window.addEventListener("pageshow", show);
    show();
  }

  var roots = document.querySelectorAll(".r2ska-retrieval[id]:not([data-r2ska-ready])");
  for (var i = 0; i < roots.length; i++) {
    roots[i].setAttribute("data-r2ska-ready", "");
    setUp(roots[i]);
  }
})();
