// Play the precomputed frames of the static latent traversal demos that
// r2ska.widgets.static_traversal_html writes. Every demo fragment inlines this
// script after its own elements. Each run sets up the demos on the page that no
// earlier run has set up. A demo therefore works when its HTML is part of the page
// source, and also when a front end inserts the HTML later and then runs the script.
(function () {
  "use strict";

  function setUp(root) {
    var data = JSON.parse(root.querySelector("script.r2ska-traversal-frames").textContent);
    var select = root.querySelector("select");
    var range = root.querySelector('input[type="range"]');
    var readout = root.querySelector("output");
    var image = root.querySelector("img");

    function show() {
      var row = Number(select.value);
      var column = Number(range.value);
      image.src = data.frames[row][column];
      image.alt = "Decoded image for " + data.dimNames[row] + " = " + data.labels[column];
      readout.textContent = data.labels[column];
    }

    select.addEventListener("change", show);
    range.addEventListener("input", show);
    range.addEventListener("change", show);
    // A browser may restore form values when the reader comes back to the page.
    window.addEventListener("pageshow", show);
    show();
  }

  var roots = document.querySelectorAll(".r2ska-traversal:not([data-r2ska-ready])");
  for (var i = 0; i < roots.length; i++) {
    roots[i].setAttribute("data-r2ska-ready", "");
    setUp(roots[i]);
  }
})();
