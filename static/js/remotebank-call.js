/*
 * One participant's side of a RemoteBank video call, on Janus' videoroom.
 *
 * Used by the customer's mobile page, the agent console and the supervisor's
 * call page (credentials.publish false: a silent listener joins the room to
 * learn of its publishers and subscribes to them, but never publishes). The server gives
 * credentials (server URL, room id, a token bound to this room, and the
 * participant's opaque handle, used as the Janus display name so that events
 * and recordings map back to the participant); this module publishes the
 * local camera and microphone, subscribes to every other publisher, and
 * reports state changes through callbacks. Requires janus.js (Debian's
 * libjs-janus-gateway 1.1.2) and webrtc-adapter loaded before it.
 *
 * Weak links (docs/janus.md, "TURN and NAT", "Weak links"): the credentials
 * carry this participant's TURN relay (ice_servers, time-limited), its video
 * bitrate cap (asked of Janus in every configure) and whether to send
 * simulcast layers; a subscriber whose link is poor asks Janus for a lower
 * layer; a remote video that stops decoding for stall_seconds, or an ICE
 * state of disconnected/failed, triggers an ICE restart on the same session
 * (state "ice_restart") before the page's rejoin logic would give up on it.
 * Quality is reported in words from the page's translated catalogue
 * (templates/calls/call_messages.html), never as "good".
 */
(function (global) {
  "use strict";

  function RemoteBankCall(options) {
    this.options = options; // {credentials, localVideo, remoteContainer, labelFor(handle), onState(name, detail), onError(code, message)}
    this.janus = null;
    this.publisher = null;
    this.privateId = null;
    this.feeds = {}; // feed id -> {handle, element, stream, plugin}
    this.audioMuted = false;
    this.videoMuted = false;
    this.statsTimer = null;
    this.level = null;
    this.betterSince = 0; // consecutive samples better than the current level
    this.samplesAtLevel = 0;
    this.upgraded = false; // the current level came from an upgrade
    this.upgradeAfter = 3; // better samples needed to go up (UPGRADE_SAMPLES, doubled after a failed try)
    this.restarting = {}; // handle kind/feed id -> time of the last ICE restart
    this.messages = loadMessages();
  }

  /* Translated words for the quality line: {% translate %} strings the page
   * includes as JSON (templates/calls/call_messages.html). */
  function loadMessages() {
    var node = global.document && global.document.getElementById("remotebank-call-messages");
    var fallback = { good: "好", fair: "一般", poor: "差", advice_poor: "", advice_fair: "" };
    if (!node) return fallback;
    try {
      return Object.assign(fallback, JSON.parse(node.textContent));
    } catch (error) {
      return fallback;
    }
  }

  // Janus videoroom simulcast substreams: 0 lowest, 2 highest.
  var SUBSTREAM = { poor: 0, fair: 1, good: 2 };
  var RANK = { poor: 0, fair: 1, good: 2 };
  var UPGRADE_SAMPLES = 3; // 6 s of better samples before a rating (and layer) goes up
  var MAX_UPGRADE_SAMPLES = 30;

  RemoteBankCall.prototype.state = function (name, detail) {
    if (this.options.onState) this.options.onState(name, detail || {});
  };

  RemoteBankCall.prototype.fail = function (code, message) {
    if (this.options.onError) this.options.onError(code, message);
  };

  RemoteBankCall.prototype.start = function () {
    var self = this;
    var creds = self.options.credentials;
    global.Janus.init({
      debug: false,
      callback: function () {
        if (!global.Janus.isWebrtcSupported()) {
          self.fail("webrtc_unsupported", "WebRTC is not supported by this browser");
          return;
        }
        self.janus = new global.Janus({
          server: creds.server_url,
          token: creds.session_token,
          // This participant's TURN relay: the way through a carrier NAT or a
          // firewall that blocks UDP (TCP and TLS URLs come after UDP).
          iceServers: creds.ice_servers || [],
          success: function () { self.attachPublisher(); },
          error: function (error) { self.fail("server_unreachable", String(error)); self.state("disconnected"); },
          destroyed: function () { self.state("closed"); },
        });
      },
    });
  };

  RemoteBankCall.prototype.attachPublisher = function () {
    var self = this;
    var creds = self.options.credentials;
    var localStream = new MediaStream();
    self.janus.attach({
      plugin: "janus.plugin.videoroom",
      success: function (handle) {
        self.publisher = handle;
        handle.send({
          message: { request: "join", room: creds.room_id, ptype: "publisher", display: creds.handle, token: creds.room_token },
        });
      },
      error: function (error) { self.fail("attach_failed", String(error)); },
      iceState: function (state) {
        self.state("ice", { state: state });
        if (state === "disconnected" || state === "failed") self.restartIce("publisher");
      },
      webrtcState: function (on) { self.state(on ? "publishing" : "not_publishing"); },
      slowLink: function (uplink, lost) { self.state("slow_link", { uplink: uplink, lost: lost }); },
      onmessage: function (msg, jsep) {
        var event = msg.videoroom;
        if (msg.error_code) {
          self.fail("room_refused", msg.error);
          return;
        }
        if (event === "joined") {
          self.privateId = msg.private_id;
          self.state("joined");
          // A supervisor listening in joins the room (to hear of its publishers) but never publishes.
          if (creds.publish !== false) self.publish();
          (msg.publishers || []).forEach(function (p) { self.subscribe(p.id, p.display); });
        } else if (event === "event") {
          (msg.publishers || []).forEach(function (p) { self.subscribe(p.id, p.display); });
          var gone = msg.leaving || msg.unpublished;
          if (gone && gone !== "ok") self.dropFeed(gone);
        } else if (event === "destroyed") {
          self.state("room_closed");
        }
        if (jsep) self.publisher.handleRemoteJsep({ jsep: jsep });
      },
      onlocaltrack: function (track, on) {
        if (on) {
          localStream.addTrack(track);
        } else {
          localStream.removeTrack(track);
        }
        self.options.localVideo.srcObject = localStream;
      },
      oncleanup: function () { self.state("not_publishing"); },
    });
  };

  /* The camera track to publish. Without simulcast (the customer's phone) it
   * goes out in three VP8 temporal layers where the browser can (L1T3): half
   * the frames are then references for none, so a packet lost on a weak
   * uplink costs that one frame instead of freezing the picture until a
   * retransmission or a key frame comes back a round trip later. Janus relays
   * a non-simulcast feed as sent, so every subscriber still gets all layers. */
  function videoTrack(simulcast) {
    var track = { type: "video", capture: true, recv: false, simulcast: simulcast };
    if (!simulcast && temporalLayersSupported()) track.svc = "L1T3";
    return track;
  }

  /* Asked of a throwaway connection: browsers that do not know the mode
   * throw (Chromium), ignore it (it is then missing from the parameters), or
   * lack the API; none of them gets svc. The codec capabilities do not list
   * scalabilityModes in Chromium 156, so they cannot answer this. */
  var temporalLayers = null;
  function temporalLayersSupported() {
    if (temporalLayers !== null) return temporalLayers;
    temporalLayers = false;
    if (!global.RTCPeerConnection) return temporalLayers;
    var probe = null;
    try {
      probe = new global.RTCPeerConnection();
      var transceiver = probe.addTransceiver("video", {
        direction: "sendonly",
        sendEncodings: [{ scalabilityMode: "L1T3" }],
      });
      var encodings = transceiver.sender.getParameters().encodings || [];
      temporalLayers = encodings.length === 1 && encodings[0].scalabilityMode === "L1T3";
    } catch (error) {
      temporalLayers = false;
    } finally {
      if (probe) probe.close();
    }
    return temporalLayers;
  }

  RemoteBankCall.prototype.publish = function () {
    var self = this;
    var creds = self.options.credentials;
    self.publisher.createOffer({
      tracks: [
        { type: "audio", capture: true, recv: false },
        videoTrack(!!creds.simulcast),
      ],
      success: function (jsep) {
        self.publisher.send({ message: self.configureMessage(), jsep: jsep });
      },
      error: function (error) {
        var name = error && error.name;
        if (name === "NotAllowedError" || name === "SecurityError") {
          self.fail("camera_refused", "Camera or microphone access was refused");
        } else if (name === "NotFoundError" || name === "OverconstrainedError") {
          self.fail("camera_missing", "No camera or microphone was found");
        } else {
          self.fail("publish_failed", String((error && error.message) || error));
        }
      },
    });
  };

  /* Start publishing on a seat that joined without (a listening supervisor who joins the call). */
  RemoteBankCall.prototype.startPublishing = function () {
    this.options.credentials.publish = true;
    if (this.publisher && this.privateId !== null) this.publish();
  };

  /* Caption every remote tile again (a participant's role learnt after their feed appeared). */
  RemoteBankCall.prototype.relabel = function () {
    var self = this;
    Object.keys(self.feeds).forEach(function (id) {
      var feed = self.feeds[id];
      var caption = feed.tile && feed.tile.querySelector("figcaption");
      if (caption && self.options.labelFor) caption.textContent = self.options.labelFor(feed.handle);
    });
  };

  /* The publisher's configure: the bitrate cap of this participant's role. */
  RemoteBankCall.prototype.configureMessage = function () {
    var message = { request: "configure", audio: true, video: true };
    var bitrate = this.options.credentials.video_bitrate;
    if (bitrate) message.bitrate = bitrate;
    return message;
  };

  /* ICE restart: same Janus session and room seat, new ICE credentials and
   * candidates. For the publisher a new offer with iceRestart; for a
   * subscriber Janus sends the new offer ("configure" with "restart"). At
   * most once per stall period per handle. */
  RemoteBankCall.prototype.restartIce = function (key) {
    var self = this;
    var now = Date.now();
    var period = ((self.options.credentials.stall_seconds || 3) * 1000);
    if (self.restarting[key] && now - self.restarting[key] < period) return;
    self.restarting[key] = now;
    self.state("ice_restart", { target: key });
    if (key === "publisher") {
      if (!self.publisher || !self.publisher.webrtcStuff || !self.publisher.webrtcStuff.pc) return;
      self.publisher.createOffer({
        iceRestart: true,
        success: function (jsep) { self.publisher.send({ message: self.configureMessage(), jsep: jsep }); },
        error: function (error) { self.fail("ice_restart_failed", String((error && error.message) || error)); },
      });
    } else {
      var feed = self.feeds[key];
      if (feed && feed.plugin) feed.plugin.send({ message: { request: "configure", restart: true } });
    }
  };

  RemoteBankCall.prototype.subscribe = function (feedId, display) {
    var self = this;
    if (self.feeds[feedId]) return;
    var creds = self.options.credentials;
    var element = document.createElement("video");
    element.autoplay = true;
    element.playsInline = true;
    element.dataset.handle = display;
    var stream = new MediaStream();
    var tile = document.createElement("figure");
    var caption = document.createElement("figcaption");
    caption.textContent = self.options.labelFor ? self.options.labelFor(display) : "";
    tile.appendChild(element);
    tile.appendChild(caption);
    self.options.remoteContainer.appendChild(tile);
    var feed = { handle: display, element: element, stream: stream, tile: tile, plugin: null };
    self.feeds[feedId] = feed;
    self.janus.attach({
      plugin: "janus.plugin.videoroom",
      success: function (handle) {
        feed.plugin = handle;
        handle.send({
          message: {
            request: "join", room: creds.room_id, ptype: "subscriber", streams: [{ feed: feedId }],
            private_id: self.privateId, token: creds.room_token,
          },
        });
      },
      error: function (error) { self.fail("subscribe_failed", String(error)); },
      onmessage: function (msg, jsep) {
        if (jsep) {
          feed.plugin.createAnswer({
            jsep: jsep,
            tracks: [{ type: "data" }],
            success: function (answer) { feed.plugin.send({ message: { request: "start", room: creds.room_id }, jsep: answer }); },
            error: function (error) { self.fail("subscribe_failed", String(error)); },
          });
        }
      },
      webrtcState: function (on) { self.state(on ? "remote_up" : "remote_down", { handle: display }); },
      iceState: function (state) {
        if (state === "disconnected" || state === "failed") self.restartIce(feedId);
      },
      onremotetrack: function (track, mid, on) {
        if (on) {
          stream.addTrack(track);
          if (track.kind === "video") feed.live = true;
          // janus.js calls onremotetrack again when a track unmutes (and
          // overrides track.onunmute itself), so "live video" is reported here.
          if (track.kind === "video" && !track.muted) self.state("remote_video", { handle: display });
        } else {
          stream.getTracks().forEach(function (t) { if (t.id === track.id) stream.removeTrack(t); });
        }
        element.srcObject = stream;
      },
      oncleanup: function () { stream.getTracks().forEach(function (t) { stream.removeTrack(t); }); },
    });
    self.startStats();
  };

  RemoteBankCall.prototype.dropFeed = function (feedId) {
    var feed = this.feeds[feedId];
    if (!feed) return;
    if (feed.plugin) feed.plugin.detach();
    if (feed.tile && feed.tile.parentNode) feed.tile.parentNode.removeChild(feed.tile);
    delete this.feeds[feedId];
    this.state("remote_left", { handle: feed.handle });
  };

  /* Connection quality: the lowest incoming video bitrate among remote feeds.
   *
   * Measured from the peer connection's own statistics rather than janus.js'
   * getBitrate(): that one keeps a timer whose pending getStats() throws
   * ("Cannot set properties of undefined") when a handle is cleaned up. */
  RemoteBankCall.prototype.startStats = function () {
    var self = this;
    if (self.statsTimer) return;
    self.statsTimer = setInterval(function () {
      var ids = Object.keys(self.feeds).filter(function (id) {
        var feed = self.feeds[id];
        return feed.live && feed.plugin && feed.plugin.webrtcStuff && feed.plugin.webrtcStuff.pc;
      });
      var stallMs = (self.options.credentials.stall_seconds || 3) * 1000;
      Promise.all(ids.map(function (id) {
        var feed = self.feeds[id];
        return feed.plugin.webrtcStuff.pc.getStats().then(function (report) {
          var bytes = 0;
          var frames = 0;
          var lost = 0;
          var received = 0;
          var at = 0;
          report.forEach(function (entry) {
            if (entry.type === "inbound-rtp" && entry.kind === "video") {
              bytes += entry.bytesReceived || 0;
              frames += entry.framesDecoded || 0;
              lost += entry.packetsLost || 0;
              received += entry.packetsReceived || 0;
              at = entry.timestamp;
            }
          });
          var previous = feed.lastStats;
          var now = Date.now();
          var progressed = !previous || frames > previous.frames;
          feed.lastStats = { bytes: bytes, frames: frames, lost: lost, received: received, at: at,
                             progressAt: progressed ? now : previous.progressAt };
          // A stall: nothing decoded for stall_seconds. Restart ICE first;
          // the page's rejoin (and the server's grace period) come after.
          if (now - feed.lastStats.progressAt >= stallMs) self.restartIce(id);
          if (!previous || at <= previous.at) return null;
          var packets = (received - previous.received) + (lost - previous.lost);
          return {
            kbits: Math.round(((bytes - previous.bytes) * 8) / (at - previous.at)), // bits per ms = kbit/s
            fps: ((frames - previous.frames) * 1000) / (at - previous.at),
            loss: packets > 0 ? (lost - previous.lost) / packets : 0,
          };
        }).catch(function () { return null; });
      })).then(function (samples) {
        samples = samples.filter(function (value) { return value !== null; });
        if (!samples.length) return;
        // The worst remote feed decides: bitrate, frame rate and loss together.
        var level = "good";
        samples.forEach(function (sample) {
          var poor = sample.kbits < 100 || sample.fps < 8 || sample.loss > 0.1;
          var fair = sample.kbits < 250 || sample.fps < 15 || sample.loss > 0.03;
          if (poor) level = "poor"; else if (fair && level === "good") level = "fair";
        });
        var kbits = Math.min.apply(null, samples.map(function (sample) { return sample.kbits; }));
        // Down at once, up only after UPGRADE_SAMPLES better samples in a row:
        // a lower layer carries fewer kbit/s, so without this the rating and
        // the layer flap every 2 s (seen on a 5 % loss link: poor, fair,
        // good, fair... and the customer told so each time).
        // An upgrade that fails within two samples doubles the wait before
        // the next try (up to a minute): a link that cannot carry the
        // higher layer is not probed every few seconds.
        var better = self.level !== null && RANK[level] > RANK[self.level];
        var worse = self.level !== null && RANK[level] < RANK[self.level];
        self.samplesAtLevel += 1;
        self.betterSince = better ? self.betterSince + 1 : 0;
        if (better && self.betterSince < self.upgradeAfter) level = self.level;
        if (worse && self.upgraded && self.samplesAtLevel <= 2) {
          self.upgradeAfter = Math.min(self.upgradeAfter * 2, MAX_UPGRADE_SAMPLES);
        } else if (self.samplesAtLevel > MAX_UPGRADE_SAMPLES) {
          self.upgradeAfter = UPGRADE_SAMPLES;
        }
        if (level !== self.level) {
          self.upgraded = better;
          self.betterSince = 0;
          self.samplesAtLevel = 0;
          self.level = level;
          // A weak subscriber asks Janus for a lower simulcast layer (no-op
          // for a feed sent without simulcast, such as the customer's).
          ids.forEach(function (id) {
            var feed = self.feeds[id];
            if (feed && feed.plugin) feed.plugin.send({ message: { request: "configure", substream: SUBSTREAM[level] } });
          });
          if (ids.length) self.state("substream", { substream: SUBSTREAM[level], level: level });
        }
        self.state("quality", {
          kbits: kbits,
          level: level,
          label: self.messages[level],
          advice: self.messages["advice_" + level] || "",
        });
      });
    }, 2000);
  };

  RemoteBankCall.prototype.toggleAudio = function () {
    if (!this.publisher) return false;
    this.audioMuted = !this.audioMuted;
    if (this.audioMuted) this.publisher.muteAudio(); else this.publisher.unmuteAudio();
    return this.audioMuted;
  };

  RemoteBankCall.prototype.toggleVideo = function () {
    if (!this.publisher) return false;
    this.videoMuted = !this.videoMuted;
    if (this.videoMuted) this.publisher.muteVideo(); else this.publisher.unmuteVideo();
    return this.videoMuted;
  };

  /* The current frame of a remote participant's video as a JPEG blob (snapshots, R5). */
  RemoteBankCall.prototype.snapshot = function (handle) {
    var feed = Object.values(this.feeds).find(function (f) { return f.handle === handle; });
    if (!feed || !feed.element.videoWidth) return Promise.reject(new Error("no video"));
    var canvas = document.createElement("canvas");
    canvas.width = feed.element.videoWidth;
    canvas.height = feed.element.videoHeight;
    canvas.getContext("2d").drawImage(feed.element, 0, 0);
    return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", 0.92); });
  };

  RemoteBankCall.prototype.leave = function () {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    if (this.janus) this.janus.destroy({ cleanupHandles: true });
    this.janus = null;
  };

  global.RemoteBankCall = RemoteBankCall;
})(window);
