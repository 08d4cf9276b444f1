// The inbox's one script: send a decision without leaving the page, then follow the
// deal's status until the workers have moved it on. Without it, the forms still work.
"use strict";
(function () {
  const status = document.getElementById("status");
  const notice = document.getElementById("notice");
  const form = document.getElementById("decide-form");
  if (!status) return;
  const url = status.dataset.statusUrl;
  let initial = status.textContent.trim();

  function say(text) { if (notice) notice.textContent = text; }

  // The status moved: fetch the page again and put its new sections (the deal, the wait,
  // the timeline, the audit trail) in place of the old, without a reload.
  async function follow() {
    try {
      const answer = await fetch(window.location.href, { headers: { Accept: "text/html" } });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      document.querySelectorAll("[data-follow]").forEach((old) => {
        const now = fresh.getElementById(old.id);
        if (now) old.replaceWith(document.importNode(now, true));
      });
    } catch (e) { /* the next change tries again */ }
  }

  async function poll() {
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" } });
      if (answer.ok) {
        const data = await answer.json();
        if (data.status !== status.textContent.trim()) {
          status.textContent = data.status;
          follow();
        }
        if (initial === "waiting_review" && data.status !== "waiting_review" && form) {
          form.querySelectorAll("button, textarea, input:not([type=hidden])").forEach((el) => { el.disabled = true; });
          if (!notice.dataset.mine) say("This review was decided: the deal is now " + data.status + ".");
        }
      }
    } catch (e) { /* the next poll tries again */ }
    setTimeout(poll, 1000);
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = new FormData(form);
      if (event.submitter) body.set(event.submitter.name, event.submitter.value);
      form.querySelectorAll("button").forEach((el) => { el.disabled = true; });
      const answer = await fetch(form.action, {
        method: "POST", body, headers: { Accept: "application/json" } });
      const data = await answer.json();
      notice.dataset.mine = "1";
      say(data.message || data.error || "done");
      if (!answer.ok) form.querySelectorAll("button").forEach((el) => { el.disabled = answer.status === 409; });
    });
  }
  poll();
})();
