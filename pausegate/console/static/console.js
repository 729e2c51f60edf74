// pausegate console: the one script of its own (served from /static like htmx; the CSP allows no inline script).
//
// After an action done in place (htmx posts a form and swaps the page's main part), keyboard focus would
// stay on a button that no longer exists. Move it to what the action produced: the refusal and its
// reason, or the confirmation, so that keyboard and screen-reader users land where the answer is.
document.addEventListener("htmx:afterSettle", function (event) {
  var config = event.detail && event.detail.requestConfig;
  if (!config || config.verb !== "post") {
    return; // live updates (server-sent events) must never move the focus
  }
  var target = document.getElementById("refusal") || document.querySelector("#main .flash") ||
    document.getElementById("main");
  if (target) {
    if (!target.hasAttribute("tabindex")) {
      target.setAttribute("tabindex", "-1");
    }
    target.focus();
  }
});

// Relative times ("3 min ago") are computed here, from the <time datetime> the server rendered, so that
// the server's live fragments stay the same from one second to the next (and are not re-sent and
// re-announced for a clock's sake). Without JavaScript the absolute time stays on the page.
function pausegateAgo(iso) {
  var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  var units = [["d", 86400], ["h", 3600], ["min", 60]];
  for (var i = 0; i < units.length; i++) {
    if (seconds >= units[i][1]) {
      var whole = Math.floor(seconds / units[i][1]);
      var rest = i + 1 < units.length ? Math.floor((seconds % units[i][1]) / units[i + 1][1]) : 0;
      return whole + " " + units[i][0] + (rest && i + 1 < units.length ? " " + rest + " " + units[i + 1][0] : "") + " ago";
    }
  }
  return Math.floor(seconds) + " s ago";
}

function pausegateTick() {
  document.querySelectorAll("time[data-relative]").forEach(function (element) {
    if (!element.title) {
      element.title = element.textContent;
    }
    element.textContent = pausegateAgo(element.getAttribute("datetime"));
  });
  document.querySelectorAll("[data-since]").forEach(function (element) {
    element.textContent = "(" + pausegateAgo(element.getAttribute("data-since")) + ")";
  });
}

document.addEventListener("DOMContentLoaded", pausegateTick);
document.addEventListener("htmx:afterSettle", pausegateTick);
setInterval(pausegateTick, 10000);
