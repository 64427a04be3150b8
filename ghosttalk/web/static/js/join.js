// Before the room: the nickname rule and plain-language explanations of why the microphone is missing.

const CONTROL = /\p{Cc}/u;
export const NAME_MAX = 12;

// Same rule as the server: trimmed, 1–12 characters (code points), no control characters.
export function checkNickname(raw) {
  const name = raw.trim();
  const length = [...name].length;
  if (length === 0) return { error: 'err_name_empty' };
  if (length > NAME_MAX) return { error: 'err_name_long' };
  if (CONTROL.test(name)) return { error: 'err_name_chars' };
  return { name };
}

// Why the page cannot use a microphone at all, before asking for it.
export function micUnavailable() {
  if (!window.isSecureContext) return 'err_insecure';
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return 'err_no_media';
  if (typeof RTCPeerConnection !== 'function') return 'err_no_webrtc';
  return null;
}

export function micErrorKey(error) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'err_mic_denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'err_mic_missing';
    case 'NotReadableError':
    case 'AbortError':
      return 'err_mic_busy';
    default:
      return 'err_mic_other';
  }
}

// A device remembered from an earlier visit may be gone; fall back to the default one.
export async function openMicWithFallback(engine, options) {
  try {
    await engine.openMic(options);
  } catch (error) {
    if (!options.deviceId || !['OverconstrainedError', 'NotFoundError'].includes(error.name)) throw error;
    await engine.openMic({ ...options, deviceId: '' });
  }
}
