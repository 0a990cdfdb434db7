/* LeadFlow form embed. Usage:
 *   <form data-leadflow-form="FORM_KEY"> ...inputs named like the form's fields... </form>
 *   <script src="https://CAPTURE/v1/forms/FORM_KEY/embed.js" async></script>
 * Optional attributes on the form: data-leadflow-success="Thanks!" (message),
 * data-leadflow-redirect="https://..." (go there after success).
 * Events: "leadflow:success" (detail.leadId) and "leadflow:error" (detail.errors) on the form.
 */
(function () {
  "use strict";
  var config = __LEADFLOW_CONFIG__;
  // Without CAPTURE_PUBLIC_BASE_URL the endpoint is a path: it is resolved against the URL the
  // browser fetched this script from, never against a Host header the server was sent.
  var endpoint = new URL(config.endpoint,
                         (document.currentScript && document.currentScript.src) || window.location.href).href;
  var CLICK_PARAMS = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                      "gclid", "fbclid", "msclkid"];
  var STORE_KEY = "leadflow_attribution";
  var VISITOR_KEY = "leadflow_visitor_id";
  var renderedAt = Date.now();

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === "x" ? r : (r & 0x3 | 0x8)).toString(16);
    });
  }

  // The campaign that brought the visitor stays with them while they browse the site.
  function campaignParams() {
    var query = new URLSearchParams(window.location.search);
    var fresh = {};
    var found = false;
    CLICK_PARAMS.forEach(function (name) {
      var value = query.get(name);
      if (value) { fresh[name] = value; found = true; }
    });
    try {
      if (found) {
        window.sessionStorage.setItem(STORE_KEY, JSON.stringify(fresh));
        return fresh;
      }
      return JSON.parse(window.sessionStorage.getItem(STORE_KEY) || "{}") || {};
    } catch (e) {
      return fresh;
    }
  }

  function visitorId() {
    try {
      var id = window.localStorage.getItem(VISITOR_KEY);
      if (!id) { id = uuid(); window.localStorage.setItem(VISITOR_KEY, id); }
      return id;
    } catch (e) {
      return null;
    }
  }

  var campaign = campaignParams();

  function messageBox(form) {
    var box = form.querySelector("[data-leadflow-message]");
    if (!box) {
      box = document.createElement("div");
      box.setAttribute("data-leadflow-message", "");
      box.setAttribute("role", "status");
      box.className = "leadflow-message";
      form.appendChild(box);
    }
    return box;
  }

  function showMessage(form, text, kind) {
    var box = messageBox(form);
    box.textContent = text;
    box.setAttribute("data-kind", kind);
    box.className = "leadflow-message leadflow-" + kind;
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".leadflow-field-error"), function (el) {
      el.parentNode.removeChild(el);
    });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  function showErrors(form, errors) {
    var unplaced = [];
    errors.forEach(function (error) {
      var field = form.elements.namedItem(error.field);
      if (field && field.length !== undefined && !field.tagName) { field = field[0]; }
      var note = document.createElement("div");
      note.className = "leadflow-field-error";
      note.setAttribute("role", "alert");
      note.setAttribute("data-field", error.field);
      note.setAttribute("data-code", error.code);
      note.textContent = error.message;
      if (field && field.parentNode) {
        field.setAttribute("aria-invalid", "true");
        field.parentNode.insertBefore(note, field.nextSibling);
      } else {
        unplaced.push(error.message);
      }
    });
    showMessage(form, unplaced.length ? unplaced.join(" ") : "Please correct the highlighted fields.", "error");
  }

  function collect(form) {
    var data = {};
    new FormData(form).forEach(function (value, name) {
      if (typeof value !== "string") { return; }
      data[name] = Object.prototype.hasOwnProperty.call(data, name) ? data[name] + ", " + value : value;
    });
    Object.keys(campaign).forEach(function (name) {
      if (!data[name]) { data[name] = campaign[name]; }
    });
    if (!data.referrer && document.referrer) { data.referrer = document.referrer; }
    if (!data.landing_page) { data.landing_page = window.location.href; }
    if (!data.page_title && document.title) { data.page_title = document.title; }
    if (!data.visitor_id) {
      var vid = visitorId();
      if (vid) { data.visitor_id = vid; }
    }
    data._rendered_at = String(renderedAt);
    return data;
  }

  function dispatch(form, name, detail) {
    var event;
    try {
      event = new CustomEvent(name, { detail: detail, bubbles: true });
    } catch (e) {
      event = document.createEvent("CustomEvent");
      event.initCustomEvent(name, true, false, detail);
    }
    form.dispatchEvent(event);
  }

  function onSubmit(event) {
    event.preventDefault();
    var form = event.currentTarget;
    if (form.getAttribute("data-leadflow-busy")) { return; }
    form.setAttribute("data-leadflow-busy", "true");
    // One key per fill: a retry after a network error cannot make a second lead.
    if (!form.leadflowIdempotencyKey) { form.leadflowIdempotencyKey = uuid(); }
    clearErrors(form);
    fetch(endpoint, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Idempotency-Key": form.leadflowIdempotencyKey
      },
      body: JSON.stringify(collect(form))
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { status: response.status, body: body, retryAfter: response.headers.get("Retry-After") };
      });
    }).then(function (result) {
      form.removeAttribute("data-leadflow-busy");
      if (result.status === 202) {
        form.leadflowIdempotencyKey = null;
        form.setAttribute("data-leadflow-lead-id", result.body.lead_id || "");
        showMessage(form, form.getAttribute("data-leadflow-success") ||
          "Thank you! We have received your details.", "success");
        dispatch(form, "leadflow:success", { leadId: result.body.lead_id });
        form.reset();
        var redirect = form.getAttribute("data-leadflow-redirect");
        if (redirect) { window.location.assign(redirect); }
        return;
      }
      var errors = (result.body && result.body.errors) || [];
      if (result.status === 422 && errors.length) {
        showErrors(form, errors);
      } else if (result.status === 429) {
        showMessage(form, "Too many submissions; please try again in " + (result.retryAfter || "a few") +
          " seconds.", "error");
      } else {
        showMessage(form, (result.body && result.body.detail) || "Something went wrong; please try again.",
          "error");
      }
      dispatch(form, "leadflow:error", { status: result.status, errors: errors });
    }).catch(function () {
      form.removeAttribute("data-leadflow-busy");
      showMessage(form, "We could not reach the server; please try again.", "error");
      dispatch(form, "leadflow:error", { status: 0, errors: [] });
    });
  }

  function attach() {
    var forms = document.querySelectorAll('form[data-leadflow-form="' + config.formKey + '"]');
    Array.prototype.forEach.call(forms, function (form) {
      if (form.getAttribute("data-leadflow-ready")) { return; }
      form.setAttribute("data-leadflow-ready", "true");
      if (config.honeypotField && !form.elements.namedItem(config.honeypotField)) {
        // A field people never see; bots that fill every input give themselves away.
        var trap = document.createElement("input");
        trap.type = "text";
        trap.name = config.honeypotField;
        trap.tabIndex = -1;
        trap.autocomplete = "off";
        trap.setAttribute("aria-hidden", "true");
        trap.style.cssText = "position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden";
        form.appendChild(trap);
      }
      form.addEventListener("submit", onSubmit);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", attach);
  } else {
    attach();
  }
})();
