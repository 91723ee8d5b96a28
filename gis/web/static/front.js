/* OneMap front page: copy buttons, and the page's ?token= carried on to OneMap's own links.
 *
 * The server never sees ?token= (authentication takes it off before routing, gis.security), so a
 * role allowed a URL token (the wall's) keeps it on the next page only if the page passes it on.
 */
(function () {
  "use strict";
  const token = new URLSearchParams(location.search).get("token");
  if (token) {
    for (const link of document.querySelectorAll("a[href]")) {
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin) continue;
      url.searchParams.set("token", token);
      link.href = url.toString();
    }
  }
  for (const button of document.querySelectorAll("dl.copyable button")) {
    button.addEventListener("click", async () => {
      const input = button.parentElement.querySelector("input");
      input.select();
      try {
        // the Clipboard API exists only in secure contexts; intranet pages over http fall back
        if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(input.value);
        else document.execCommand("copy");
        const label = button.textContent;
        button.textContent = button.dataset.copied;
        setTimeout(() => { button.textContent = label; }, 1500);
      } catch (err) {
        console.warn("copy failed; the text is selected for Ctrl+C", err);
      }
    });
  }
  for (const input of document.querySelectorAll("dl.copyable input")) {
    input.addEventListener("focus", () => input.select());
  }
})();
