// @ts-check
// The voice transform of an end-to-end encrypted room (docs/E2EE.md "Voice frames"), in a worker so that
// sealing and opening never wait on the page's main thread. One worker per RoomCrypto, so one secret: the
// voice keys and the replay window are shared by every stream it handles, and a frame the server replays on
// another forwarding line is still recognised. It gets frames either way the browser offers them:
// RTCRtpScriptTransform fires `rtctransform` here; Chromium's createEncodedStreams() posts the two streams.

import { VoiceKeys, VoiceOpener, VoiceSealer } from './voice-frames.js';

/** @typedef {import('./e2ee.js').TransformOptions} TransformOptions */
/** @typedef {import('./e2ee.js').CryptoStats} CryptoStats */
/** @typedef {{ data: ArrayBuffer }} EncodedFrame RTCEncodedAudioFrame, in the little this worker uses */
/**
 * RTCRtpScriptTransformer: the frames of one sender or receiver, and the options the page gave.
 * @typedef {{ options: TransformOptions, readable: ReadableStream<EncodedFrame>,
 *   writable: WritableStream<EncodedFrame> }} Transformer_
 */
/**
 * The worker's global scope, typed apart: the project checks its modules against the window's DOM types.
 * @typedef {object} WorkerScope
 * @property {(message: unknown) => void} postMessage
 * @property {(type: 'message', listener: (event: MessageEvent<unknown>) => void) => void} addEventListener
 * @property {((event: { transformer: Transformer_ }) => void) | null} onrtctransform
 */

const scope = /** @type {WorkerScope} */ (/** @type {unknown} */ (globalThis));
const STATS_INTERVAL_MS = 1000;

/** @type {CryptoStats} */
const stats = { encrypted: 0, decrypted: 0, failed: 0, replayed: 0, encryptMicros: 0, decryptMicros: 0 };
/** @type {VoiceKeys | null} */
let keys = null;
/** @type {VoiceOpener | null} */
let opener = null;
let statsTimer = 0;
let reported = '';

/**
 * @param {TransformOptions} options
 * @returns {VoiceKeys}
 */
function keysFor(options) {
  if (!keys) {
    const made = new VoiceKeys(options.baseKey, options.room);
    keys = made;
    opener = new VoiceOpener((peerId) => made.get(peerId));
  }
  return keys;
}

// The page reads the counts from its Diagnostics; posted only when they changed.
function report() {
  const text = JSON.stringify(stats);
  if (text === reported) return;
  reported = text;
  scope.postMessage({ stats: { ...stats } });
}

/**
 * @param {TransformOptions} options
 * @returns {Transformer<EncodedFrame, EncodedFrame>}
 */
function sealing(options) {
  const sealer = keysFor(options).get(options.selfId).then((key) => new VoiceSealer(key, options.selfId));
  return {
    async transform(frame, controller) {
      const started = performance.now();
      try {
        frame.data = (await (await sealer).seal(frame.data)).buffer;
      } catch {
        // Never sent in the clear: a frame that could not be sealed is not sent at all.
        stats.failed += 1;
        return;
      }
      stats.encrypted += 1;
      stats.encryptMicros += (performance.now() - started) * 1000;
      controller.enqueue(frame);
    },
  };
}

/**
 * @param {TransformOptions} options
 * @returns {Transformer<EncodedFrame, EncodedFrame>}
 */
function opening(options) {
  keysFor(options);
  const voices = /** @type {VoiceOpener} */ (opener);
  return {
    async transform(frame, controller) {
      const started = performance.now();
      const opened = await voices.open(frame.data);
      if ('dropped' in opened) {
        stats[opened.dropped] += 1;
        return;
      }
      stats.decrypted += 1;
      stats.decryptMicros += (performance.now() - started) * 1000;
      frame.data = opened.frame;
      controller.enqueue(frame);
    },
  };
}

/**
 * @param {TransformOptions} options
 * @param {ReadableStream<EncodedFrame>} readable
 * @param {WritableStream<EncodedFrame>} writable
 */
function pipe(options, readable, writable) {
  const transformer = options.side === 'send' ? sealing(options) : opening(options);
  if (!statsTimer) statsTimer = setInterval(report, STATS_INTERVAL_MS);
  // Ends when the connection closes its streams; nothing to clean up after that.
  readable.pipeThrough(new TransformStream(transformer)).pipeTo(writable).catch(() => {});
}

/** @param {{ transformer: Transformer_ }} event */
scope.onrtctransform = (event) => {
  const { options, readable, writable } = event.transformer;
  pipe(options, readable, writable);
};

scope.addEventListener('message', (event) => {
  /** @type {unknown} */
  const raw = event.data;
  const data = /** @type {{ options?: TransformOptions, readable?: ReadableStream<EncodedFrame>,
    writable?: WritableStream<EncodedFrame> } | null} */ (raw);
  if (data && data.options && data.readable && data.writable) pipe(data.options, data.readable, data.writable);
});
