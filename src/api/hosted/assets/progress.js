// Progress for the sign-in forms. The forms work without this file: it only shows what the
// server is doing while the browser waits for the answer.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form[data-progress]");
  Array.prototype.forEach.call(forms, function (form) {
    var box = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    var timer = null;
    form.addEventListener("submit", function () {
      var messages = form.getAttribute("data-progress").split("|");
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
      }
      form.setAttribute("aria-busy", "true");
      if (box && text) {
        box.hidden = false;
        text.textContent = messages[0];
        var next = 1;
        timer = setInterval(function () {
          if (next >= messages.length) {
            clearInterval(timer);
            return;
          }
          text.textContent = messages[next];
          next += 1;
        }, 5000);
      }
    });
    // Back to this page from the history: ready again.
    window.addEventListener("pageshow", function () {
      if (timer) {
        clearInterval(timer);
      }
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = false;
      }
      form.removeAttribute("aria-busy");
      if (box) {
        box.hidden = true;
      }
    });
  });
})();
