// The "Print summary" button, bound here because the pages' CSP allows no inline script.
document.addEventListener("click", (event) => {
  const target = event.target;
  if (target instanceof Element && target.closest("[data-print]")) {
    window.print();
  }
});
