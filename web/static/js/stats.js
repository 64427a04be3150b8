// @ts-check
// Network quality from RTCPeerConnection.getStats(), sampled every 2 s: round-trip time of the selected
// candidate pair, packet loss and jitter of the audio we receive, and the route (host/srflx/relay).
const INTERVAL_MS = 2000;

/**
 * The fields read here of the stats objects browsers report (each kind has some of them).
 * @typedef {object} Stat
 * @property {string} type
 * @property {string} [kind]
 * @property {string} [selectedCandidatePairId] transport
 * @property {string} [localCandidateId] candidate-pair
 * @property {boolean} [nominated] candidate-pair
 * @property {string} [state] candidate-pair
 * @property {number} [currentRoundTripTime] candidate-pair, seconds
 * @property {string} [candidateType] local-candidate
 * @property {number} [packetsReceived] inbound-rtp
 * @property {number} [packetsLost] inbound-rtp
 * @property {number} [jitter] inbound-rtp, seconds
 * @property {number} [ssrc] inbound-rtp
 * @property {number} [roundTripTime] remote-inbound-rtp, seconds
 */
/** @typedef {{ forEach(each: (stat: Stat) => void): void, get(id: string): Stat | undefined }} Report */
/**
 * One sample of the connection's quality.
 * @typedef {object} Sample
 * @property {number | null} rttMs
 * @property {number | null} lossPct since the previous sample
 * @property {number | null} jitterMs
 * @property {string | null} candidateType the route: host, srflx or relay
 * @property {number} liveStreams incoming audio streams that received packets since the previous sample
 * @property {number} received
 * @property {number} lost
 * @property {Map<number | undefined, number>} packetsBySsrc
 */

/**
 * @param {Report} report
 * @returns {Stat | null}
 */
function selectedPair(report) {
  /** @type {Stat | null} */
  let pair = null;
  report.forEach((stat) => {
    if (stat.type === 'transport' && stat.selectedCandidatePairId) {
      pair = report.get(stat.selectedCandidatePairId) ?? null;
    }
  });
  if (pair) return pair;
  // Browsers without transport stats mark the pair in use as nominated and succeeded.
  report.forEach((stat) => {
    if (!pair && stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') pair = stat;
  });
  return pair;
}

/**
 * @param {Report} report RTCPeerConnection.getStats()
 * @param {Sample | null} previous
 * @returns {Sample}
 */
export function summarize(report, previous) {
  const pair = selectedPair(report);
  const local = pair && pair.localCandidateId ? report.get(pair.localCandidateId) : null;
  let received = 0;
  let lost = 0;
  /** @type {number | null} */
  let jitter = null;
  /** @type {number | null} */
  let remoteRtt = null;
  /** @type {Map<number | undefined, number>} */
  const packetsBySsrc = new Map();
  report.forEach((stat) => {
    if (stat.type === 'inbound-rtp' && stat.kind === 'audio') {
      received += stat.packetsReceived || 0;
      lost += Math.max(0, stat.packetsLost || 0);
      if (typeof stat.jitter === 'number') jitter = Math.max(jitter ?? 0, stat.jitter);
      packetsBySsrc.set(stat.ssrc, stat.packetsReceived || 0);
    }
    if (stat.type === 'remote-inbound-rtp' && typeof stat.roundTripTime === 'number') {
      remoteRtt = stat.roundTripTime;
    }
  });
  let live = 0;
  for (const [ssrc, packets] of packetsBySsrc) {
    if (packets > ((previous && previous.packetsBySsrc.get(ssrc)) ?? 0)) live += 1;
  }
  const gotten = previous ? received - previous.received : received;
  const missed = previous ? lost - previous.lost : lost;
  const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : remoteRtt;
  return {
    rttMs: rtt === null ? null : Math.round(rtt * 1000),
    lossPct: gotten + missed > 0 ? (100 * Math.max(0, missed)) / (gotten + missed) : null,
    jitterMs: jitter === null ? null : Math.round(jitter * 1000),
    candidateType: local ? local.candidateType ?? null : null,
    liveStreams: live,
    received,
    lost,
    packetsBySsrc,
  };
}

/**
 * @param {Sample | null} sample
 * @returns {'unknown' | 'good' | 'fair' | 'poor'}
 */
export function quality(sample) {
  if (!sample || sample.rttMs === null) return 'unknown';
  const loss = sample.lossPct ?? 0;
  if (sample.rttMs < 150 && loss < 2) return 'good';
  if (sample.rttMs < 300 && loss < 8) return 'fair';
  return 'poor';
}

export class StatsSampler {
  /**
   * @param {RTCPeerConnection} pc
   * @param {(sample: Sample) => void} onSample
   */
  constructor(pc, onSample) {
    this.pc = pc;
    this.onSample = onSample;
    /** @type {Sample | null} */
    this.previous = null;
    this.timer = window.setInterval(() => void this.sample(), INTERVAL_MS);
  }

  // Never rejects: a connection closed meanwhile has nothing to report.
  async sample() {
    if (this.pc.connectionState === 'closed') return;
    /** @type {Report} */
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return;
    }
    const sample = summarize(report, this.previous);
    this.previous = sample;
    this.onSample(sample);
  }

  stop() {
    window.clearInterval(this.timer);
  }
}
