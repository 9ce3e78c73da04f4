// myoguide's only script: quicker entry on the assessment form, and the print button.
// The pages work without it: rows are then added by the server and Enter in a select does not submit.
(function () {
  "use strict";

  function renumber(el, from, to) {
    // Row fields are named by their index (current_medications[0].agent): the copy gets the next one.
    ["name", "id", "for", "aria-describedby"].forEach(function (attr) {
      el.querySelectorAll("[" + attr + "]").forEach(function (node) {
        node.setAttribute(attr, node.getAttribute(attr).split("[" + from + "]").join("[" + to + "]"));
      });
    });
  }

  function addRow(form, kind) {
    var box = form.querySelector('[data-rows="' + kind + '"]');
    var rows = box.querySelectorAll("fieldset.entry");
    var last = rows[rows.length - 1];
    var copy = last.cloneNode(true);
    renumber(copy, rows.length - 1, rows.length);
    copy.querySelectorAll(".error").forEach(function (n) { n.remove(); });
    copy.querySelectorAll("[aria-invalid]").forEach(function (n) {
      n.removeAttribute("aria-invalid");
      n.removeAttribute("aria-describedby");
    });
    copy.querySelectorAll("input").forEach(function (n) { n.value = ""; });
    copy.querySelectorAll("select").forEach(function (n) { n.selectedIndex = 0; n.removeAttribute("data-chosen"); });
    var legend = copy.querySelector("legend");
    legend.textContent = legend.textContent.replace(/\d+$/, String(rows.length + 1));
    box.appendChild(copy);
    if (form.querySelector("#dose-keys:not([hidden])")) { describeDoseKeys(copy); }
    var agent = copy.querySelector("[data-agent]");
    if (agent) { agent.dispatchEvent(new Event("change", { bubbles: true })); }
    copy.querySelector("select").focus();
  }

  function fitUnits(select, courses) {
    // An infusion or course drug (rituximab, IVIG, cyclophosphamide) is dosed per infusion or per
    // course, with the date of the last one; any other drug per day or week. Only the units that
    // fit the chosen drug are offered (all of them while no drug is chosen).
    var unit = select.closest("fieldset.entry").querySelector("[data-unit]");
    if (!unit) { return; }
    var chosen = select.value !== "";
    var course = courses.indexOf(select.value) >= 0;
    unit.querySelectorAll("option, optgroup").forEach(function (node) {
      var show = !chosen || node.hasAttribute("data-course") === course;
      node.hidden = !show;
      if (node.tagName === "OPTION") { node.disabled = !show; }
    });
  }

  function setUnit(select, periods, courses, choosing) {
    // The unit follows the drug's dose period (from the knowledge); a person may still change it.
    // A course drug's unit is left for the clinician: per infusion or per course is not guessed.
    var row = select.closest("fieldset.entry");
    var unit = row.querySelector("[data-unit]");
    var date = row.querySelector("[data-course-only]");
    var course = courses.indexOf(select.value) >= 0;
    fitUnits(select, courses);
    if (date) { date.hidden = !course && !date.querySelector("input").value; }
    // A row without its drug takes no dose yet: its dose and unit are no Tab stops until then.
    var dose = row.querySelector('input[name$=".dose.value"]');
    var empty = !select.value && !(dose && dose.value);
    if (dose) { dose.disabled = empty; }
    if (unit) { unit.disabled = empty; }
    if (!unit) { return; }
    var current = unit.options[unit.selectedIndex];
    var unfit = !current || current.disabled;
    if (course) {
      if (unfit) { unit.value = ""; }
    } else if (select.value && ((choosing && !unit.hasAttribute("data-chosen")) || unfit)) {
      // A unit the person chose stays when the drug changes, if it still fits: never swapped under them.
      unit.value = "mg/" + (periods[select.value] || "day");
    }
  }

  function flareAnswersControl(form) {
    // A flare is activity again after control, so "yes" to the flare answers "ever controlled"
    // (the server reads it so too); the control question then needs no stop of its own.
    var flare = form.querySelector("[data-flare]");
    var control = form.querySelector("[data-control]");
    if (!flare || !control) { return; }
    var before = null;
    var sync = function () {
      if (flare.value === "yes" && control.value !== "no") {
        if (!control.disabled) { before = control.value; }
        control.value = "yes";
        control.disabled = true;
      } else if (flare.value !== "yes" && control.disabled) {
        control.disabled = false;
        if (before !== null) { control.value = before; }
      }
    };
    flare.addEventListener("change", sync);
    sync();
  }

  function otherDiagnosis(form) {
    var choice = form.querySelector('[name="diagnosis"]');
    var row = form.querySelector("[data-if-other]");
    if (!choice || !row) { return; }
    var sync = function () {
      var input = row.querySelector("input");
      row.hidden = choice.value !== "other" && !(input && input.value);
    };
    choice.addEventListener("change", sync);
    sync();
  }

  // Type-ahead in a select, as a clinician expects: the letters typed so far choose the one
  // option they begin; while they fit several ("m": mild, moderate) nothing is chosen and a
  // hint says which, instead of silently picking the first.
  var typed = { select: null, text: "", at: 0 };

  function hintFor(select) {
    var id = select.id + "-typeahead";
    var hint = document.getElementById(id);
    if (!hint) {
      hint = document.createElement("span");
      hint.id = id;
      hint.className = "hint typeahead";
      hint.setAttribute("role", "status");
      select.insertAdjacentElement("afterend", hint);
    }
    return hint;
  }

  function typeAhead(select, event) {
    var now = Date.now();
    if (typed.select !== select || now - typed.at > 1500) { typed.text = ""; }
    typed.select = select;
    typed.at = now;
    var text = typed.text + event.key.toLowerCase();
    var options = Array.prototype.slice.call(select.options);
    var fits = options.filter(function (o) { return o.text.trim().toLowerCase().indexOf(text) === 0; });
    if (!fits.length) { return; }  // nothing begins so: the key is ignored, what was typed stays
    event.preventDefault();
    typed.text = text;
    var hint = hintFor(select);
    var exact = fits.filter(function (o) { return o.text.trim().toLowerCase() === text; });
    var pick = fits.length === 1 ? fits[0] : exact.length === 1 ? exact[0] : null;
    if (pick) {
      hint.textContent = "";
      if (select.value !== pick.value) {
        select.value = pick.value;
        select.dispatchEvent(new Event("change", { bubbles: true }));
      }
      return;
    }
    hint.textContent = "“" + text + "”: " + fits.map(function (o) { return o.text.trim(); }).join(" or ") +
      "; type the next letter";
  }

  // A figure typed in a row's drug or unit select (no option begins with one) is the row's dose:
  // it goes to the Dose field, as the hint above the rows says. Only a figure moves focus, never a
  // choice, so a habitual Tab after the drug still reaches the same fields (WCAG 3.2.2).
  function doseFromDrug(select, event) {
    if (!/^[0-9.]$/.test(event.key) || !select.matches("[data-agent], [data-unit]")) { return false; }
    var row = select.closest("fieldset.entry");
    var dose = row && row.querySelector('input[name$=".dose.value"]');
    if (!dose || dose.disabled) { return false; }
    event.preventDefault();
    dose.focus();
    dose.value = event.key;  // as a Tab into a filled field and a figure typed: it replaces
    dose.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  }

  function announceDoseKeys(form) {
    // The hint is the script's: without it a figure in a select does nothing, so it stays hidden.
    var hint = form.querySelector("#dose-keys");
    if (!hint) { return; }
    hint.hidden = false;
    describeDoseKeys(form);
  }

  function describeDoseKeys(root) {
    root.querySelectorAll("[data-agent], [data-unit]").forEach(function (select) {
      var had = select.getAttribute("aria-describedby") || "";
      if (had.split(" ").indexOf("dose-keys") < 0) {
        select.setAttribute("aria-describedby", had ? had + " dose-keys" : "dose-keys");
      }
    });
  }

  function assessForm(form) {
    var periods = JSON.parse(form.getAttribute("data-periods") || "{}");
    var courses = JSON.parse(form.getAttribute("data-course-agents") || "[]");
    form.querySelectorAll("[data-add]").forEach(function (button) {
      button.type = "button";
      button.addEventListener("click", function () { addRow(form, button.getAttribute("data-add")); });
    });
    form.addEventListener("change", function (event) {
      if (event.target.matches("[data-agent]")) { setUnit(event.target, periods, courses, true); }
      if (event.target.matches("[data-unit]")) { event.target.setAttribute("data-chosen", ""); }
    });
    form.addEventListener("keydown", function (event) {
      // Enter submits from any field, a select too (browsers only do it for text fields).
      if (event.key === "Enter" && event.target.tagName === "SELECT") {
        event.preventDefault();
        form.requestSubmit(form.querySelector(".default-submit"));
        return;
      }
      if (event.target.tagName === "SELECT" && event.key.length === 1 && event.key !== " " &&
          !event.ctrlKey && !event.metaKey && !event.altKey) {
        if (doseFromDrug(event.target, event)) { return; }
        typeAhead(event.target, event);
      }
    });
    otherDiagnosis(form);
    flareAnswersControl(form);
    announceDoseKeys(form);
    form.querySelectorAll("[data-agent]").forEach(function (select) {
      // As shown (a carried or refused form keeps its units); a unit that does not fit the drug
      // (an old "g/day" for rituximab) is cleared for the clinician to choose, never converted.
      setUnit(select, periods, courses, false);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-assess]").forEach(assessForm);
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
    document.querySelectorAll("a.ref").forEach(function (link) {
      link.addEventListener("click", function () {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        var box = target && target.closest("details");
        if (box) { box.open = true; }
      });
    });
  });
})();
