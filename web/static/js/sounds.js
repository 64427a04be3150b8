// @ts-check
// Join and leave cues, synthesized with Web Audio (no sound files, nothing fetched): two soft sine
// notes, rising when someone arrives and falling when someone goes.
/** @type {Record<string, number[]>} */
const CUES = {
  join: [523.25, 783.99],
  leave: [659.25, 440.0],
};
const NOTE_S = 0.11;
const PEAK = 0.12;

/**
 * @param {BaseAudioContext} ctx
 * @param {AudioNode} output
 * @param {'join' | 'leave'} name
 */
export function playCue(ctx, output, name) {
  const notes = CUES[name];
  if (!notes || ctx.state !== 'running') return;
  const start = ctx.currentTime + 0.02;
  notes.forEach((frequency, index) => {
    const at = start + index * NOTE_S;
    const osc = ctx.createOscillator();
    const env = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = frequency;
    env.gain.setValueAtTime(0, at);
    env.gain.linearRampToValueAtTime(PEAK, at + 0.015);
    env.gain.exponentialRampToValueAtTime(0.0001, at + NOTE_S * 1.6);
    osc.connect(env);
    env.connect(output);
    osc.start(at);
    osc.stop(at + NOTE_S * 1.7);
    osc.addEventListener('ended', () => env.disconnect());
  });
}
