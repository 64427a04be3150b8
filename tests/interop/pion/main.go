// Command ghosttalk-pion joins a GhostTalk room with Pion WebRTC, an independent WebRTC stack, the way the
// page does: it offers one send-receive Opus transceiver, answers the server's re-offers, trickles
// candidates both ways and answers the heartbeat DataChannel. It sends a fixed Opus frame 50 times a second
// and reports what happens as JSON lines on stdout, which tests/interop/test_pion.py reads: signaling and
// connection events as they happen, and every 250 ms the packets received so far from each speaker.
//
// Pion is left to behave as it does by default (it answers re-offers with a=setup:active, stops
// transceivers offered inactive and sends candidates with an empty sdpMid): the server has to cope.
// The only settings changed confine the network to loopback, where the test server listens.
//
// Commands come one per line on stdin: "mute true" or "mute false" sends a mute message, as the page's
// mute button does (the server's peer_update reply, reported as an event, also tells the test that every
// message sent before it has been handled). It exits on SIGTERM or SIGINT, when stdin reaches end of file
// (the test process went away), when the server closes the socket, or after -lifetime, so that it can
// never outlive a test run.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media"
)

// opusSilence is one 20 ms Opus packet: TOC 0xF8 (CELT-only, fullband, 20 ms, mono, one frame) followed by
// a frame that decodes to silence. The receiving test compares payloads byte for byte.
var opusSilence = []byte{0xF8, 0xFF, 0xFE}

const frameDuration = 20 * time.Millisecond

// reportInterval paces the rx and tx lines: often enough that a test waiting for a count waits little.
const reportInterval = 250 * time.Millisecond

// reporter writes one JSON object per line; Pion calls back on many goroutines.
type reporter struct {
	mu  sync.Mutex
	out *json.Encoder
}

func (r *reporter) emit(event string, fields map[string]any) {
	line := map[string]any{"event": event, "t": float64(time.Now().UnixNano()) / 1e9}
	for key, value := range fields {
		line[key] = value
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.out.Encode(line)
}

// message is every signaling message this client reads or writes (one struct: the fields do not clash).
type message struct {
	Type      string          `json:"type"`
	SDP       string          `json:"sdp,omitempty"`
	Candidate json.RawMessage `json:"candidate,omitempty"`
	SelfID    string          `json:"self_id,omitempty"`
	Message   string          `json:"message,omitempty"`
	PeerID    string          `json:"peer_id,omitempty"`
	Muted     *bool           `json:"muted,omitempty"`
	Peer      *struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Muted bool   `json:"muted"`
	} `json:"peer,omitempty"`
}

// candidate is the shape the page sends: the three fields of RTCIceCandidateInit it forwards.
type candidate struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex"`
}

type client struct {
	rep  *reporter
	ws   *websocket.Conn
	wsMu sync.Mutex // gorilla allows one writer at a time

	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
	send  bool

	// Every signaling step runs on the main loop, in arrival order, as the page's promise queue does.
	steps chan func()

	connected atomic.Bool
	sent      atomic.Int64
	pongs     atomic.Int64

	countsMu sync.Mutex
	counts   map[string]int64 // RTP packets received, by the stream id (speaker's peer id) of the track
}

func main() {
	url := flag.String("url", "", "ws://host:port/ws?room=R&name=N")
	send := flag.Bool("send", true, "send an Opus frame every 20 ms")
	lifetime := flag.Duration("lifetime", 2*time.Minute, "leave after this long whatever happens")
	flag.Parse()
	rep := &reporter{out: json.NewEncoder(os.Stdout)}
	if *url == "" {
		rep.emit("fatal", map[string]any{"error": "-url is required"})
		os.Exit(2)
	}
	os.Exit(run(rep, *url, *send, *lifetime))
}

func run(rep *reporter, url string, send bool, lifetime time.Duration) int {
	ws, response, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fields := map[string]any{"error": err.Error()}
		if response != nil {
			fields["status"] = response.StatusCode
		}
		rep.emit("refused", fields)
		return 2
	}
	c := &client{rep: rep, ws: ws, send: send, steps: make(chan func(), 64), counts: map[string]int64{}}
	closed := make(chan string, 1)
	go c.readSignaling(closed)
	go c.readCommands(closed)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	report := time.NewTicker(reportInterval)
	defer report.Stop()
	deadline := time.NewTimer(lifetime)
	defer deadline.Stop()

	reason := ""
	for reason == "" {
		select {
		case step := <-c.steps:
			step()
		case <-report.C:
			c.reportCounts()
		case got := <-stop:
			reason = got.String()
		case <-deadline.C:
			reason = "lifetime"
		case reason = <-closed:
		}
	}
	c.reportCounts()
	c.leave()
	rep.emit("left", map[string]any{"reason": reason})
	return 0
}

func (c *client) readCommands(closed chan<- string) {
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		switch command := strings.TrimSpace(lines.Text()); command {
		case "mute true", "mute false":
			muted := command == "mute true"
			c.steps <- func() { c.write(message{Type: "mute", Muted: &muted}) }
		default:
			c.rep.emit("bad_command", map[string]any{"command": command})
		}
	}
	select {
	case closed <- "stdin closed":
	default:
	}
}

// readSignaling turns each server message into a step of the main loop.
func (c *client) readSignaling(closed chan<- string) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			fields := map[string]any{"error": err.Error()}
			var closeErr *websocket.CloseError
			if errors.As(err, &closeErr) {
				fields["code"] = closeErr.Code
				fields["text"] = closeErr.Text
			}
			// Through the step queue: the messages read before the close (an error saying why) come first.
			c.steps <- func() {
				c.rep.emit("socket_closed", fields)
				select {
				case closed <- "socket closed":
				default:
				}
			}
			return
		}
		var msg message
		if err := json.Unmarshal(data, &msg); err != nil {
			c.rep.emit("bad_message", map[string]any{"error": err.Error()})
			continue
		}
		c.steps <- func() { c.handle(msg) }
	}
}

func (c *client) write(msg any) {
	c.wsMu.Lock()
	defer c.wsMu.Unlock()
	if err := c.ws.WriteJSON(msg); err != nil {
		c.rep.emit("problem", map[string]any{"step": "send", "error": err.Error()})
	}
}

func (c *client) handle(msg message) {
	switch msg.Type {
	case "room_state":
		c.rep.emit("joined", map[string]any{"self_id": msg.SelfID})
		if err := c.start(); err != nil {
			c.rep.emit("failed", map[string]any{"step": "start", "error": err.Error()})
		}
	case "peer_join":
		if msg.Peer != nil {
			c.rep.emit("peer_join", map[string]any{"peer": msg.Peer.ID, "name": msg.Peer.Name})
		}
	case "peer_update":
		if msg.Peer != nil {
			c.rep.emit("peer_update", map[string]any{"peer": msg.Peer.ID, "muted": msg.Peer.Muted})
		}
	case "peer_leave":
		c.rep.emit("peer_leave", map[string]any{"peer": msg.PeerID})
	case "error":
		c.rep.emit("server_error", map[string]any{"message": msg.Message})
	case "offer":
		c.rep.emit("offer", map[string]any{"sdp": msg.SDP})
		if err := c.answer(msg.SDP); err != nil {
			c.rep.emit("failed", map[string]any{"step": "answer", "error": err.Error()})
		}
	case "answer":
		c.rep.emit("answer", map[string]any{"sdp": msg.SDP})
		// An answer to an offer we rolled back has nothing to apply to.
		if c.pc == nil || c.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
			return
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: msg.SDP}); err != nil {
			c.rep.emit("failed", map[string]any{"step": "apply answer", "error": err.Error()})
		}
	case "candidate":
		c.addCandidate(msg.Candidate)
	}
}

// start creates the connection; its negotiationneeded event sends the first offer.
func (c *client) start() error {
	engine := &webrtc.MediaEngine{}
	opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	if err := engine.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opus, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	interceptors := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(engine, interceptors); err != nil {
		return err
	}
	settings := webrtc.SettingEngine{}
	// Pion logs to stdout by default, which carries this program's JSON lines: its warnings go to stderr.
	logs := logging.NewDefaultLoggerFactory()
	logs.Writer = os.Stderr
	settings.LoggerFactory = logs
	// Loopback only: the test server listens on 127.0.0.1, and tests send nothing beyond this machine.
	settings.SetIncludeLoopbackCandidate(true)
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	settings.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(engine), webrtc.WithInterceptorRegistry(interceptors), webrtc.WithSettingEngine(settings))

	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return err
	}
	c.pc = pc
	// Queued from a goroutine: Pion calls back from its own operation queue, which must never wait on ours.
	pc.OnNegotiationNeeded(func() { go func() { c.steps <- c.offer }() })
	pc.OnICECandidate(c.onLocalCandidate)
	pc.OnTrack(c.onTrack)
	pc.OnDataChannel(c.onDataChannel)
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		c.connected.Store(state == webrtc.PeerConnectionStateConnected)
		c.rep.emit("state", map[string]any{"connection": state.String()})
	})
	pc.OnICEConnectionStateChange(func(state webrtc.ICEConnectionState) {
		c.rep.emit("state", map[string]any{"ice": state.String()})
	})
	pc.OnSignalingStateChange(func(state webrtc.SignalingState) {
		c.rep.emit("state", map[string]any{"signaling": state.String()})
	})

	c.track, err = webrtc.NewTrackLocalStaticSample(opus, "voice", "pion")
	if err != nil {
		return err
	}
	transceiver, err := pc.AddTransceiverFromTrack(c.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return err
	}
	go drainRTCP(transceiver.Sender())
	if c.send {
		go c.speak()
	}
	return nil
}

// drainRTCP reads the sender's incoming RTCP, without which Pion's interceptors never see it.
func drainRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := sender.Read(buf); err != nil {
			return
		}
	}
}

func (c *client) speak() {
	ticker := time.NewTicker(frameDuration)
	defer ticker.Stop()
	for range ticker.C {
		if c.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
			return
		}
		if err := c.track.WriteSample(media.Sample{Data: opusSilence, Duration: frameDuration}); err != nil {
			continue
		}
		if c.connected.Load() {
			c.sent.Add(1)
		}
	}
}

func (c *client) offer() {
	if c.pc.SignalingState() != webrtc.SignalingStateStable {
		return // negotiationneeded fires again once stable if still needed
	}
	offer, err := c.pc.CreateOffer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.rep.emit("failed", map[string]any{"step": "offer", "error": err.Error()})
		return
	}
	c.rep.emit("offered", map[string]any{"sdp": offer.SDP})
	c.write(message{Type: "offer", SDP: offer.SDP})
}

func (c *client) answer(sdp string) error {
	if c.pc == nil {
		return errors.New("offer before room_state")
	}
	// The polite side: an offer that collides with ours wins.
	if c.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		if err := c.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("apply offer: %w", err)
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := c.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	c.rep.emit("answered", map[string]any{"sdp": answer.SDP})
	c.write(message{Type: "answer", SDP: answer.SDP})
	return nil
}

func (c *client) onLocalCandidate(found *webrtc.ICECandidate) {
	if found == nil {
		return // gathering finished; the page sends nothing for it either
	}
	init := found.ToJSON()
	raw, err := json.Marshal(candidate{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex})
	if err != nil {
		return
	}
	c.rep.emit("local_candidate", map[string]any{"candidate": init.Candidate, "sdpMid": init.SDPMid})
	c.write(message{Type: "candidate", Candidate: raw})
}

func (c *client) addCandidate(raw json.RawMessage) {
	if c.pc == nil || c.pc.RemoteDescription() == nil {
		return
	}
	var init webrtc.ICECandidateInit
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &init); err != nil {
			c.rep.emit("problem", map[string]any{"step": "candidate", "error": err.Error()})
			return
		}
	}
	if err := c.pc.AddICECandidate(init); err != nil {
		c.rep.emit("problem", map[string]any{"step": "add candidate", "error": err.Error()})
	}
}

func (c *client) onTrack(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	peer := track.StreamID()
	c.rep.emit("track", map[string]any{"peer": peer, "track": track.ID(), "ssrc": uint32(track.SSRC()), "codec": track.Codec().MimeType})
	c.countsMu.Lock()
	if _, seen := c.counts[peer]; !seen {
		c.counts[peer] = 0
	}
	c.countsMu.Unlock()
	go func() {
		for {
			packet, _, err := track.ReadRTP()
			if err != nil {
				c.rep.emit("track_ended", map[string]any{"peer": peer, "error": err.Error()})
				return
			}
			c.countsMu.Lock()
			c.counts[peer]++
			first := c.counts[peer] == 1
			c.countsMu.Unlock()
			if first {
				c.rep.emit("first_packet", map[string]any{"peer": peer, "payload": fmt.Sprintf("%x", packet.Payload)})
			}
		}
	}()
}

func (c *client) onDataChannel(channel *webrtc.DataChannel) {
	c.rep.emit("datachannel", map[string]any{"label": channel.Label()})
	if channel.Label() != "heartbeat" {
		return
	}
	channel.OnMessage(func(msg webrtc.DataChannelMessage) {
		if msg.IsString && string(msg.Data) == "ping" {
			if err := channel.SendText("pong"); err == nil {
				c.pongs.Add(1)
			}
		}
	})
}

func (c *client) reportCounts() {
	c.countsMu.Lock()
	peers := make([]string, 0, len(c.counts))
	for peer := range c.counts {
		peers = append(peers, peer)
	}
	sort.Strings(peers)
	counts := make([]int64, len(peers))
	for i, peer := range peers {
		counts[i] = c.counts[peer]
	}
	c.countsMu.Unlock()
	for i, peer := range peers {
		c.rep.emit("rx", map[string]any{"peer": peer, "packets": counts[i]})
	}
	c.rep.emit("tx", map[string]any{"packets": c.sent.Load(), "pongs": c.pongs.Load()})
}

func (c *client) leave() {
	c.wsMu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	c.wsMu.Unlock()
	_ = c.ws.Close()
	if c.pc != nil {
		_ = c.pc.Close()
	}
}
