// The intent script on the legal representative's phone (R7.5, docs/businesses.md).
// The page calls ``show(operation, send)`` whenever it learns of the waiting
// operation; ``send(answers)`` posts them (the page's own fetch helper, with
// CSRF) and resolves with the server's answer.
(() => {
  "use strict";
  let shownFor = null;

  function yesNo(form, key, text) {
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend"); legend.textContent = text; set.appendChild(legend);
    for (const [value, id] of [["yes", "intent-yes"], ["no", "intent-no"]]) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio"; input.name = key; input.value = value;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + document.getElementById(id).textContent));
      set.appendChild(label);
    }
    form.appendChild(set);
  }

  function show(operation, send, onDone) {
    const box = document.getElementById("intent");
    const waiting = Boolean(operation && operation.confirm_by === "customer_intent" && operation.script);
    box.hidden = !waiting;
    if (!waiting || shownFor === operation.id) return;
    shownFor = operation.id;
    const form = document.getElementById("intent-form");
    form.replaceChildren();
    for (const line of operation.script) {
      if (line.key === "purpose") {
        const label = document.createElement("label"); label.textContent = line.text + " ";
        const input = document.createElement("input"); input.name = "purpose"; input.maxLength = 200;
        label.appendChild(input); form.appendChild(label);
      } else {
        yesNo(form, line.key, line.text);
      }
    }
    box.scrollIntoView({ behavior: "smooth", block: "start" });
    const submit = document.getElementById("intent-submit");
    submit.onclick = async () => {
      const choice = (name) => { const picked = form.querySelector(`input[name="${name}"]:checked`); return picked ? picked.value === "yes" : null; };
      const answers = { company_confirmed: choice("company_confirmed"), purpose: form.elements.purpose.value, intent: choice("intent") };
      submit.disabled = true;
      try { onDone(await send(answers), null); box.hidden = true; } catch (error) { onDone(null, error); } finally { submit.disabled = false; }
    };
  }

  window.RemoteBankIntent = { show };
})();
