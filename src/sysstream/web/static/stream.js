// The page's one connection to the server: probe over HTTP, then one WebSocket; reconnect
// with capped, jittered backoff; ask for a token on 401. States are explicit and shown in
// the header, so the user always knows whether the numbers are live.

export const State = Object.freeze({
  CONNECTING: "connecting", // first attempt since the page (or host) opened
  LIVE: "live", // WebSocket open, messages flowing
  RECONNECTING: "reconnecting", // lost it; waiting `retryAt` before the next attempt
  UNAUTHORIZED: "unauthorized", // the server wants a token we do not have (or rejected ours)
  CLOSED: "closed", // stopped by the page (host switch, unload)
});

const BACKOFF_FIRST = 0.5; // seconds
const BACKOFF_MAX = 10;
const PROBE_TIMEOUT = 5000; // ms

/** Delay before reconnect attempt `n` (0-based): 0.5, 1, 2, 4, 8, 10, 10… seconds ±20%. */
export function backoff(n, random = Math.random) {
  const base = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** n);
  return base * (0.8 + 0.4 * random());
}

export class Stream {
  /**
   * @param {object} options
   * @param {() => string} options.probeUrl   HTTP URL answering 200 when the stream is reachable
   * @param {() => string} options.streamUrl  WebSocket URL, asked afresh on every attempt
   * @param {() => string|null} options.token the token to send, if any
   * @param {(probe: any) => void} options.onProbe   the probe's JSON body (the schema)
   * @param {(message: any) => void} options.onMessage every message, parsed
   * @param {(stream: Stream) => void} options.onState every state change
   */
  constructor(options) {
    this.options = options;
    this.state = State.CONNECTING;
    this.attempt = 0; // consecutive failed attempts
    this.retryAt = null; // performance.now() of the next attempt while RECONNECTING
    this.detail = ""; // why we are not live, for the status line
    this.lastMessageAt = null;
    this.socket = null;
    this.timer = null;
    this.watchdog = null;
    this.stallAfter = 15000; // ms without a message before we call the connection dead
    this.generation = 0; // bumps on every (re)start so stale callbacks are ignored
  }

  start() {
    this.#set(State.CONNECTING, "");
    this.#connect(++this.generation);
  }

  /** Retry now (after a token was entered, or the browser came back online). */
  retry() {
    if (this.state === State.LIVE || this.state === State.CLOSED) return;
    clearTimeout(this.timer);
    this.#connect(++this.generation);
  }

  close() {
    this.generation += 1;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.#set(State.CLOSED, "");
  }

  send(message) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** The longest silence (ms) tolerated before reconnecting; a few stream intervals. */
  setStallTimeout(ms) {
    this.stallAfter = Math.max(5000, ms);
  }

  async #connect(generation) {
    const token = this.options.token();
    let response;
    try {
      response = await fetch(this.options.probeUrl(), {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        cache: "no-store",
        signal: AbortSignal.timeout(PROBE_TIMEOUT),
      });
    } catch (error) {
      if (generation === this.generation) this.#fail("server unreachable");
      return;
    }
    if (generation !== this.generation) return;
    if (response.status === 401 || response.status === 403) {
      this.#set(State.UNAUTHORIZED, token ? "token rejected" : "token required");
      return;
    }
    if (!response.ok) {
      this.#fail(`HTTP ${response.status}`);
      return;
    }
    let probe;
    try {
      probe = await response.json();
      this.options.onProbe(probe);
    } catch (error) {
      if (generation === this.generation) this.#fail(`bad schema: ${error.message}`);
      return;
    }
    if (generation !== this.generation) return;
    this.#open(generation);
  }

  #open(generation) {
    const socket = new WebSocket(this.options.streamUrl());
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      if (generation !== this.generation) return;
      opened = true;
      this.#set(State.LIVE, "");
      this.#arm(generation);
    };
    socket.onmessage = (event) => {
      if (generation !== this.generation) return;
      this.attempt = 0; // only a message proves the stream works end to end
      this.lastMessageAt = performance.now();
      this.#arm(generation);
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the protocol sends JSON text only; ignore anything else
      }
      this.options.onMessage(message);
    };
    socket.onclose = (event) => {
      if (generation !== this.generation) return;
      this.socket = null;
      clearTimeout(this.watchdog);
      // A handshake refused (401 with --token) closes before open; the next attempt's probe
      // tells an auth failure from a server that is down.
      this.#fail(opened ? `connection closed (${event.code})` : "handshake failed");
    };
  }

  #arm(generation) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (generation !== this.generation || !this.socket) return;
      this.generation += 1; // ignore the late close event of the abandoned socket
      this.socket.close(4000, "stalled");
      this.socket = null;
      this.#fail("no data");
    }, this.stallAfter);
  }

  #fail(detail) {
    const delay = backoff(this.attempt) * 1000;
    this.attempt += 1;
    this.retryAt = performance.now() + delay;
    this.#set(State.RECONNECTING, detail);
    const generation = ++this.generation;
    this.timer = setTimeout(() => this.#connect(generation), delay);
  }

  #set(state, detail) {
    this.state = state;
    this.detail = detail;
    if (state !== State.RECONNECTING) this.retryAt = null;
    this.options.onState(this);
  }
}
