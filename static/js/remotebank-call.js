/*
 * One participant's side of a RemoteBank video call, on Janus' videoroom.
 *
 * Used by the customer's mobile page and the agent console. The server gives
 * credentials (server URL, room id, a token bound to this room, and the
 * participant's opaque handle, used as the Janus display name so that events
 * and recordings map back to the participant); this module publishes the
 * local camera and microphone, subscribes to every other publisher, and
 * reports state changes through callbacks. Requires janus.js (Debian's
 * libjs-janus-gateway 1.1.2) and webrtc-adapter loaded before it.
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
  }

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
          iceServers: [],
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
      iceState: function (state) { self.state("ice", { state: state }); },
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
          self.publish();
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

  RemoteBankCall.prototype.publish = function () {
    var self = this;
    self.publisher.createOffer({
      tracks: [
        { type: "audio", capture: true, recv: false },
        { type: "video", capture: true, recv: false },
      ],
      success: function (jsep) {
        self.publisher.send({ message: { request: "configure", audio: true, video: true }, jsep: jsep });
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
      var feeds = Object.keys(self.feeds).map(function (id) { return self.feeds[id]; }).filter(function (feed) {
        return feed.live && feed.plugin && feed.plugin.webrtcStuff && feed.plugin.webrtcStuff.pc;
      });
      Promise.all(feeds.map(function (feed) {
        return feed.plugin.webrtcStuff.pc.getStats().then(function (report) {
          var bytes = 0;
          var at = 0;
          report.forEach(function (entry) {
            if (entry.type === "inbound-rtp" && entry.kind === "video") {
              bytes += entry.bytesReceived || 0;
              at = entry.timestamp;
            }
          });
          var previous = feed.lastStats;
          feed.lastStats = { bytes: bytes, at: at };
          if (!previous || at <= previous.at) return null;
          return Math.round(((bytes - previous.bytes) * 8) / (at - previous.at)); // bits per ms = kbit/s
        }).catch(function () { return null; });
      })).then(function (rates) {
        rates = rates.filter(function (value) { return value !== null && value > 0; });
        if (!rates.length) return;
        var worst = Math.min.apply(null, rates);
        self.state("quality", { kbits: worst, level: worst > 300 ? "good" : worst > 100 ? "fair" : "poor" });
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
