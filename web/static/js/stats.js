// Network quality from RTCPeerConnection.getStats(), sampled every 2 s: round-trip time of the selected
// candidate pair, packet loss and jitter of the audio we receive, and the route (host/srflx/relay).
const INTERVAL_MS = 2000;

function selectedPair(report) {
  let pair = null;
  report.forEach((stat) => {
    if (stat.type === 'transport' && stat.selectedCandidatePairId) pair = report.get(stat.selectedCandidatePairId);
  });
  if (pair) return pair;
  // Browsers without transport stats mark the pair in use as nominated and succeeded.
  report.forEach((stat) => {
    if (!pair && stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') pair = stat;
  });
  return pair;
}

export function summarize(report, previous) {
  const pair = selectedPair(report);
  const local = pair ? report.get(pair.localCandidateId) : null;
  let received = 0;
  let lost = 0;
  let jitter = null;
  let remoteRtt = null;
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
    candidateType: local ? local.candidateType : null,
    liveStreams: live,
    received,
    lost,
    packetsBySsrc,
  };
}

export function quality(sample) {
  if (!sample || sample.rttMs === null) return 'unknown';
  const loss = sample.lossPct ?? 0;
  if (sample.rttMs < 150 && loss < 2) return 'good';
  if (sample.rttMs < 300 && loss < 8) return 'fair';
  return 'poor';
}

export class StatsSampler {
  constructor(pc, onSample) {
    this.pc = pc;
    this.onSample = onSample;
    this.previous = null;
    this.timer = window.setInterval(() => this.sample(), INTERVAL_MS);
  }

  async sample() {
    if (this.pc.connectionState === 'closed') return;
    const report = await this.pc.getStats();
    const sample = summarize(report, this.previous);
    this.previous = sample;
    this.onSample(sample);
  }

  stop() {
    window.clearInterval(this.timer);
  }
}
