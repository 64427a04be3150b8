// @ts-check
// The network pill at the top of the room (the "signal" button): the figures of the last stats sample while
// media flows, and the outage while it does not. A sample read before a drop must never outlive it: the
// pill would say "good" next to "Connection lost".
import { Diagnostics } from './diagnostics.js';
import { byId } from './dom.js';
import { setText } from './i18n.js';
import { quality, StatsSampler } from './stats.js';

/** @typedef {import('./peer.js').PeerLink} PeerLink */
/** @typedef {import('./stats.js').Sample} Sample */
/**
 * connecting: not yet connected in this visit; live: media flows; reconnecting: the signaling socket or the
 * peer connection is being rebuilt; offline: the socket is up but the media path stopped answering.
 * @typedef {'connecting' | 'live' | 'reconnecting' | 'offline'} PillState
 */

// ICE states in which no media gets through, whatever the connection state has caught up with yet.
const ICE_DOWN = ['disconnected', 'failed', 'closed'];

export class NetworkPill {
  /** @param {Diagnostics} diagnostics its rtt, loss and jitter rows follow the same samples */
  constructor(diagnostics) {
    this.diagnostics = diagnostics;
    this.bars = byId('signal-bars');
    this.text = byId('signal-text');
    /** @type {StatsSampler | null} */
    this.sampler = null;
    /** @type {PeerLink | null} the link being sampled */
    this.link = null;
    this.linkWasUp = false; // the sampled link connected at least once
    this.everUp = false; // any link of this visit connected at least once
    /** @type {PillState | null} */
    this.state = null;
    this.setState('connecting');
  }

  /** @param {PeerLink} link the session's new peer connection */
  attach(link) {
    this.stopSampler();
    this.link = link;
    this.linkWasUp = false;
    const sampler = new StatsSampler(link.pc, (sample) => {
      // A stopped sampler's getStats() may still resolve: its figures belong to a connection that is gone.
      if (sampler === this.sampler) this.onSample(sample);
    });
    this.sampler = sampler;
    // Comes up connecting: live once the session reports it connected (update()).
    this.setState(this.everUp ? 'reconnecting' : 'connecting');
  }

  /**
   * Follows the session's transport: call it on every state change of the socket or the peer connection.
   * @param {string} socketState the signaling socket's state
   * @param {PeerLink | null} link the session's current peer connection, null while there is none
   */
  update(socketState, link) {
    if (link !== this.link) this.stopSampler();
    const up = link !== null && link === this.link && socketState === 'open'
      && link.connectionState === 'connected' && !ICE_DOWN.includes(link.iceState);
    if (up) {
      this.linkWasUp = true;
      this.everUp = true;
      this.setState('live');
    } else if (!this.everUp) {
      this.setState('connecting');
    } else {
      // The socket still open and this very link once connected: the media path dropped under us.
      this.setState(socketState === 'open' && this.linkWasUp ? 'offline' : 'reconnecting');
    }
  }

  /** @param {PillState} state */
  setState(state) {
    if (state === this.state) return;
    this.state = state;
    if (state === 'live') {
      // Until the first sample of the restored connection: nothing measured yet, and nothing stale.
      this.bars.dataset.quality = 'unknown';
      setText(this.text, 'signal_unknown');
      return;
    }
    this.bars.dataset.quality = 'none';
    if (state === 'connecting') setText(this.text, 'pill_connecting');
    else if (state === 'offline') setText(this.text, 'pill_offline');
    else setText(this.text, 'pill_reconnecting');
    this.diagnostics.update({ rtt: null, loss: null, jitter: null });
  }

  /** @param {Sample} sample */
  onSample(sample) {
    if (this.state !== 'live') return;
    this.diagnostics.update(Diagnostics.fromSample(sample));
    this.bars.dataset.quality = quality(sample);
    if (sample.rttMs === null) setText(this.text, 'signal_unknown');
    else {
      setText(this.text, 'signal_summary', {
        rtt: sample.rttMs,
        loss: (sample.lossPct ?? 0).toFixed(0),
        jitter: sample.jitterMs ?? 0,
      });
    }
  }

  stopSampler() {
    if (this.sampler) this.sampler.stop();
    this.sampler = null;
    this.link = null;
  }

  // Leaving the room: the next visit starts from "connecting" again.
  stop() {
    this.stopSampler();
    this.everUp = false;
    this.linkWasUp = false;
    this.setState('connecting');
  }
}
