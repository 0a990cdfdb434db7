/* The configuration pages' own behaviour (the console's Content-Security-Policy allows no inline script):
 * - a button with data-copy="ID" copies the text of the element ID (the form embed snippet, a new API key);
 * - a form with data-preview-endpoint posts its fill to capture from this browser, as a web page would,
 *   and shows the lead id capture accepted it as, or capture's errors next to the inputs they name.
 */
(function () {
  "use strict";
  var renderedAt = Date.now();

  function setStatus(id, text) {
    var status = document.querySelector('[data-copy-status="' + id + '"]');
    if (status) { status.textContent = text; }
  }

  function copy(button) {
    var id = button.getAttribute("data-copy");
    var source = document.getElementById(id);
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { setStatus(id, "Copied."); },
        function () { setStatus(id, "Select the text and copy it."); });
    } else if (source.select) {
      source.select();
      setStatus(id, document.execCommand && document.execCommand("copy") ? "Copied." : "Select the text and copy it.");
    }
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return String(Date.now()) + "-" + String(Math.random()).slice(2);
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".preview-error"), function (el) { el.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  function showErrors(form, errors) {
    var unplaced = [];
    errors.forEach(function (error, index) {
      var input = form.elements.namedItem(error.field);
      if (input && input.tagName) {
        var note = document.createElement("p");
        note.className = "field-error preview-error";
        note.id = "preview-error-" + index;
        note.textContent = error.message;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", note.id);
        var anchor = input.type === "checkbox" ? input.parentNode : input;
        anchor.parentNode.insertBefore(note, anchor.nextSibling);
      } else {
        unplaced.push(error.field + ": " + error.message);
      }
    });
    return unplaced;
  }

  function preview(form) {
    var result = document.getElementById(form.getAttribute("data-preview-result"));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors(form);
      result.className = "preview-result";
      result.textContent = "Sending…";
      var data = {};
      new FormData(form).forEach(function (value, name) {
        if (typeof value === "string" && value !== "") { data[name] = value; }
      });
      data._rendered_at = String(renderedAt);
      fetch(form.getAttribute("data-preview-endpoint"), {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: {"Content-Type": "application/json", "Accept": "application/json", "Idempotency-Key": newKey()},
        body: JSON.stringify(data)
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          return {status: response.status, body: body};
        });
      }).then(function (answer) {
        if (answer.status === 202 && answer.body.lead_id) {
          result.className = "preview-result flash flash-success";
          result.textContent = "Capture accepted the fill as lead ";
          var id = document.createElement("code");
          id.setAttribute("data-lead-id", answer.body.lead_id);
          id.textContent = answer.body.lead_id;
          result.appendChild(id);
          result.appendChild(document.createTextNode("."));
          form.reset();
          return;
        }
        var unplaced = showErrors(form, (answer.body && answer.body.errors) || []);
        result.className = "preview-result flash flash-error";
        result.textContent = "Capture refused the fill (" + answer.status + "): " +
          ((answer.body && answer.body.detail) || "no reason given") +
          (unplaced.length ? " " + unplaced.join("; ") : "");
      }).catch(function () {
        result.className = "preview-result flash flash-error";
        result.textContent = "Capture could not be reached from this browser.";
      });
    });
  }

  function attach() {
    Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
      button.addEventListener("click", function () { copy(button); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("form[data-preview-endpoint]"), preview);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", attach);
  } else {
    attach();
  }
})();
