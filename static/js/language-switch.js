/* The language switch of the back office and the customer page: a select that
 * submits its form on change. A static file, because the Content-Security-Policy
 * (apps/security/middleware.py) blocks inline event handlers such as onchange=. */
(() => {
  "use strict";
  const bind = () => {
    document.querySelectorAll("select[data-submit-on-change]").forEach((select) => {
      select.addEventListener("change", () => select.form.submit());
    });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bind);
  else bind();
})();
