// The token page's copy button: the only script (the page works without it).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentNode.querySelector(".apitokens-copied");
    if (!field) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      function done(message) { if (status) { status.textContent = message; } }
      field.select();
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(field.value).then(
          function () { done("Copied."); },
          function () { done("Press Ctrl+C (\u2318C) to copy."); }
        );
      } else {
        done(document.execCommand && document.execCommand("copy") ? "Copied." : "Press Ctrl+C (\u2318C) to copy.");
      }
    });
  });
});
