// "Try it" on a deployment's page (web/src/console/try_it.rs): posts the
// message with the form's CSRF token, reads the answer's server-sent events
// as they arrive and appends each chunk's `choices[0].delta.content` as
// text (never as HTML). Errors are OpenAI's `{"error": {"message"}}`, from
// the console or the gateway, before or during the stream. The page's
// language comes in the form's data attributes. Loaded with `defer`: no
// inline script, as the console's Content-Security-Policy requires.
(function () {
  "use strict";
  var form = document.getElementById("try-form");
  if (!form) {
    return;
  }
  var textarea = document.getElementById("try-message");
  var send = document.getElementById("try-send");
  var error = document.getElementById("try-error");
  var status = document.getElementById("try-status");
  var output = document.getElementById("try-output");
  var answer = document.getElementById("try-answer");
  var usage = document.getElementById("try-usage");
  var text = form.dataset;
  var maxChars = parseInt(text.maxChars, 10) || 4000;

  function show(element, message) {
    element.textContent = message;
    element.hidden = false;
  }

  function hide(element) {
    element.textContent = "";
    element.hidden = true;
  }

  // The message of an OpenAI error object, else `fallback`.
  function messageOf(body, fallback) {
    try {
      var parsed = typeof body === "string" ? JSON.parse(body) : body;
      if (parsed && parsed.error && typeof parsed.error.message === "string") {
        return parsed.error.message;
      }
    } catch (ignored) {
      // Not JSON: the fallback says what happened.
    }
    return fallback;
  }

  // The figures on the page count this call once the gateway has metered
  // it (within a second or so): ask them to refresh (htmx listens).
  function refreshFigures() {
    var figures = document.getElementById("traffic");
    if (figures) {
      figures.dispatchEvent(new CustomEvent("tried"));
    }
  }

  // One server-sent event: appends its text; true when it ends the answer.
  function handle(event) {
    var data = [];
    event.split("\n").forEach(function (line) {
      if (line.indexOf("data:") === 0) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    });
    if (data.length === 0) {
      return false;
    }
    var payload = data.join("\n");
    if (payload === "[DONE]") {
      return true;
    }
    var chunk;
    try {
      chunk = JSON.parse(payload);
    } catch (ignored) {
      return false;
    }
    if (chunk.error) {
      show(error, messageOf(chunk, text.failed));
      answer.dataset.state = "error";
      return false;
    }
    var choice = chunk.choices && chunk.choices[0];
    var content = choice && choice.delta && choice.delta.content;
    if (typeof content === "string" && content !== "") {
      answer.appendChild(document.createTextNode(content));
    }
    if (chunk.usage && (!chunk.choices || chunk.choices.length === 0)) {
      show(
        usage,
        chunk.usage.prompt_tokens + " " + text.usageIn + " · " +
          chunk.usage.completion_tokens + " " + text.usageOut
      );
    }
    return false;
  }

  async function read(stream) {
    var reader = stream.getReader();
    var decoder = new TextDecoder();
    var buffered = "";
    var ended = false;
    for (;;) {
      var part = await reader.read();
      if (part.done) {
        break;
      }
      buffered += decoder.decode(part.value, { stream: true }).replace(/\r\n?/g, "\n");
      var end = buffered.indexOf("\n\n");
      while (end >= 0) {
        ended = handle(buffered.slice(0, end)) || ended;
        buffered = buffered.slice(end + 2);
        end = buffered.indexOf("\n\n");
      }
    }
    buffered += decoder.decode();
    if (buffered.trim() !== "") {
      ended = handle(buffered) || ended;
    }
    return ended;
  }

  async function run(body) {
    send.disabled = true;
    hide(error);
    hide(usage);
    answer.textContent = "";
    answer.dataset.state = "streaming";
    output.hidden = true;
    show(status, text.sending);
    try {
      var response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { Accept: "text/event-stream" },
      });
      var type = response.headers.get("content-type") || "";
      if (!response.ok || type.indexOf("text/event-stream") !== 0) {
        var raw = await response.text();
        show(error, type.indexOf("json") >= 0 ? messageOf(raw, text.refused) : text.refused);
        answer.dataset.state = "error";
        return;
      }
      output.hidden = false;
      hide(status);
      var ended = await read(response.body);
      if (!ended) {
        if (error.hidden) {
          show(error, text.failed);
        }
        answer.dataset.state = "error";
      } else if (answer.dataset.state === "streaming") {
        answer.dataset.state = "done";
      }
    } catch (failed) {
      show(error, text.failed);
      answer.dataset.state = "error";
    } finally {
      hide(status);
      send.disabled = false;
      window.setTimeout(refreshFigures, 1500);
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    hide(error);
    var message = textarea.value.trim();
    if (message === "") {
      show(error, text.empty);
      return;
    }
    var chars = Array.from(message).length;
    if (chars > maxChars) {
      show(error, text.tooLong + " " + chars + " / " + maxChars);
      return;
    }
    run(new URLSearchParams(new FormData(form)));
  });
})();
