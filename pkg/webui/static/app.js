// oomwatch web UI: live updates and kernel-log anchors. Everything works
// without it; it only saves reloads.
(function () {
  'use strict';

  // A link to a kill's kernel log opens its <details>.
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    if (el && el.tagName === 'DETAILS') {
      el.open = true;
    }
  }
  window.addEventListener('hashchange', openTarget);
  openTarget();

  // A live page names its server-sent events in data-live. Each "kill"
  // (and "reload", when the server dropped events for a slow page) makes
  // the page fetch its rows again, rendered by the server.
  var region = document.getElementById('live');
  var src = region && region.getAttribute('data-live');
  if (!src || !window.EventSource || !window.fetch) {
    return;
  }
  var status = document.getElementById('live-status');
  var timer = null;
  var news = [];

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function revs() {
    var out = {};
    region.querySelectorAll('[data-id]').forEach(function (el) {
      out[el.getAttribute('data-id')] = el.getAttribute('data-rev');
    });
    return out;
  }

  function refresh() {
    timer = null;
    var url = new URL(location.href);
    url.searchParams.set('partial', '1');
    url.hash = '';
    var told = news;
    news = [];
    fetch(url.toString(), { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var before = revs();
        region.innerHTML = html;
        region.querySelectorAll('[data-id]').forEach(function (el) {
          if (before[el.getAttribute('data-id')] !== el.getAttribute('data-rev')) {
            el.classList.add('fresh');
          }
        });
        if (told.length === 1) {
          var e = told[0];
          say('New kill at ' + e.time + ' on ' + e.node + ': ' + e.victim + (e.collateral ? ' (collateral)' : '') + '.');
        } else if (told.length > 1) {
          say(told.length + ' new kills, the last at ' + told[told.length - 1].time + '.');
        } else {
          say('Updated.');
        }
      })
      .catch(function () {
        say('Could not fetch the new kills; reload the page.');
      });
  }

  function later() {
    if (!timer) {
      timer = setTimeout(refresh, 250);
    }
  }

  var es = new EventSource(src);
  var opened = false;
  es.addEventListener('open', function () {
    if (opened) {
      // Reconnected: catch up on what came meanwhile.
      later();
    }
    opened = true;
    say('Live: new kills appear here as they are stored.');
  });
  es.addEventListener('kill', function (m) {
    try {
      news.push(JSON.parse(m.data));
    } catch (err) {
      // A malformed message still means something changed.
    }
    later();
  });
  es.addEventListener('reload', later);
  es.addEventListener('error', function () {
    say('Live updates interrupted; reconnecting.');
  });
})();
