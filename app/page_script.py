"""Script that runs first on the page, before Gradio's own modules (security.GuardConfig.first_script)."""

from __future__ import annotations

#: Gradio 6.31's status tracker (the one shown while the app loads) keeps a requestAnimationFrame
#: loop for its elapsed-time display running after the tracker is gone: the page then renders 60
#: frames a second forever, 7-9 % of a core while idle and more while an answer streams (measured
#: in Chromium). Its loop callbacks are recognised by their body (elapsed seconds from
#: performance.now()) and run ten times a second from a timer instead, which forces no frames; a
#: visible elapsed time still ticks. Any other callback goes to requestAnimationFrame unchanged.
FIRST_SCRIPT = """
(() => {
  const frame = window.requestAnimationFrame.bind(window);
  const elapsedLoop = /performance\\.now\\(\\)-[\\s\\S]*\\/1e3[\\s\\S]*&&\\s*[\\w$]+\\(\\)\\s*\\}\\s*$/;
  window.requestAnimationFrame = (callback) => {
    if (typeof callback === "function" && elapsedLoop.test(String(callback))) {
      setTimeout(() => callback(performance.now()), 100);
      return 0;
    }
    return frame(callback);
  };
})();
"""
