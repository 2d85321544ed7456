// 软电话面板：坐席在浏览器中接听来电（WebRTC ↔ 服务器上的 aiortc ↔ SIP 通话）。
// The panel is any element with [data-softphone] (templates/staff/_softphone.html). Signalling
// is a WebSocket to /api/v1/softphone/ws; audio goes straight to the SIP worker over WebRTC.
"use strict";

(() => {
  const root = document.querySelector("[data-softphone]");
  if (!root) {
    return;
  }
  const STATE_LABELS = {
    offline: "未签入",
    available: "空闲",
    paused: "示忙",
    wrapup: "话后整理",
    ringing: "振铃中",
    talking: "通话中",
  };
  const ROLE_LABELS = {agent: "坐席", dispatcher: "派单员", supervisor: "班长"};
  const PARTY_STATES = {ringing: "振铃中", answering: "接通中", up: "通话中"};
  const NO_RECONNECT = new Set([4000, 4401, 4403]);
  const ICE_WAIT_MS = 3000;

  const $ = (name) => root.querySelector(`[data-sp="${name}"]`);
  const button = (action) => root.querySelector(`[data-sp-action="${action}"]`);
  const show = (el, on) => {
    if (el) {
      el.hidden = !on;
    }
  };
  const clock = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const mm = String(Math.floor(s / 60)).padStart(2, "0");
    return `${mm}:${String(s % 60).padStart(2, "0")}`;
  };

  class Softphone {
    constructor() {
      this.ws = null;
      this.nextId = 1;
      this.pending = new Map();
      this.agent = null;
      this.agentSince = Date.now();
      this.call = null;
      this.config = {ice_servers: [], codecs: ["PCMA", "PCMU"], departments: []};
      this.retryMs = 1000;
      this.audio = $("remote");
      this.meters = null;
      this.errorTimer = 0;
    }

    // -- signalling ------------------------------------------------------------------------
    connect() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${root.dataset.ws}`);
      this.ws = ws;
      $("conn").textContent = "正在连接…";
      ws.addEventListener("open", () => {
        ws.send(JSON.stringify({type: "hello", csrf: root.dataset.csrf}));
        this.retryMs = 1000;
      });
      ws.addEventListener("message", (ev) => this.receive(JSON.parse(ev.data)));
      ws.addEventListener("close", (ev) => {
        for (const {reject} of this.pending.values()) {
          reject(new Error("连接已断开"));
        }
        this.pending.clear();
        if (this.ws !== ws) {
          return;
        }
        if (ev.code === 4000) {
          $("conn").textContent = "已在其他页面打开软电话，本页已停用";
        } else if (ev.code === 4401) {
          $("conn").textContent = "登录已过期，请重新登录";
        } else if (ev.code === 4403) {
          $("conn").textContent = "连接被拒绝，请刷新页面";
        } else {
          $("conn").textContent = "连接中断，正在重连…";
        }
        if (!NO_RECONNECT.has(ev.code)) {
          setTimeout(() => this.connect(), this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, 30000);
        }
      });
    }

    request(type, fields = {}) {
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
          reject(new Error("软电话未连接"));
          return;
        }
        this.pending.set(id, {resolve, reject});
        this.ws.send(JSON.stringify({id, type, ...fields}));
      });
    }

    receive(msg) {
      if (msg.type === "result") {
        const waiter = this.pending.get(msg.re);
        this.pending.delete(msg.re);
        if (waiter) {
          if (msg.ok) {
            waiter.resolve(msg);
          } else {
            waiter.reject(new Error(msg.message || "操作失败"));
          }
        }
        if (msg.ok && msg.agent !== undefined) {
          this.setAgent(msg.agent);
        }
        return;
      }
      if (msg.type === "welcome") {
        this.config = msg;
        $("conn").textContent = msg.webrtc ? "已连接" : "已连接（软电话未启用，请用话机签入）";
        this.fillDepartments(msg.departments || []);
        this.setAgent(msg.agent);
      } else if (msg.type === "agent") {
        this.setAgent(msg.agent);
      } else if (msg.type === "ringing") {
        this.ringing(msg);
      } else if (msg.type === "call") {
        this.callState(msg);
      }
    }

    async act(type, fields) {
      try {
        return await this.request(type, fields);
      } catch (err) {
        this.error(err.message);
        return null;
      }
    }

    control(op, args = {}) {
      if (!this.call) {
        return Promise.resolve(null);
      }
      return this.act("control", {call: this.call.id, op, args});
    }

    // -- the agent's state -----------------------------------------------------------------
    setAgent(agent) {
      const before = this.agent ? this.agent.state : null;
      this.agent = agent;
      const state = agent ? agent.state : "offline";
      if (state !== before) {
        this.agentSince = Date.now();
      }
      let label = STATE_LABELS[state] || state;
      if (agent && state === "paused" && agent.reason) {
        label += `（${agent.reason}）`;
      }
      if (agent && agent.softphone === false) {
        label += " · 话机";
      }
      $("state").textContent = label;
      $("state").dataset.state = state;
      this.wrapupEnds = agent && agent.wrapup_s != null ? Date.now() + agent.wrapup_s * 1000 : 0;
      const busy = state === "ringing" || state === "talking";
      show(button("login"), !agent);
      show($("desk"), !agent);
      show(button("logout"), Boolean(agent) && !busy);
      show($("states"), Boolean(agent) && !busy);
      // a ring that was not answered in time: the queue moved on
      if (this.call && this.call.state === "ringing" && state !== "ringing") {
        this.endCall("未接听");
      }
      this.tick();
    }

    // -- ringing and answering -------------------------------------------------------------
    ringing(msg) {
      // one call at a time; the same ring sent again (after a reconnect) changes nothing once
      // the agent has picked it up
      if (this.call && this.call.state !== "ended") {
        if (this.call.id !== msg.call || this.call.state !== "ringing") {
          return;
        }
      }
      this.call = {
        id: msg.call,
        caller: msg.caller || "未知号码",
        steps: msg.ivr_steps || [],
        waited: msg.waited_s || 0,
        since: Date.now(),
        transfer: Boolean(msg.transfer),
        softphone: msg.softphone !== false,
        kind: msg.kind_label || "",
        state: "ringing",
        held: false,
        muted: false,
        parties: [],
        me: null,
        pc: null,
        mic: null,
        remote: null,
      };
      $("ring-title").textContent = msg.transfer ? "转接来电" : "来电";
      $("ring-caller").textContent = this.call.caller;
      $("ring-kind").textContent = this.call.kind || "—";
      $("ring-path").textContent = this.call.steps.join(" → ") || "—";
      show($("ring-buttons"), this.call.softphone);
      show($("ring-deskphone"), !this.call.softphone);
      this.render();
    }

    async answer() {
      const call = this.call;
      if (!call || call.state !== "ringing" || !call.softphone) {
        return;
      }
      call.state = "answering";
      this.render();
      // the ring stops counting at the click; the microphone and ICE may take a moment
      this.request("pickup", {call: call.id}).catch(() => {});
      try {
        await this.startMedia(call);
      } catch (err) {
        this.error(`接听失败：${err.message}`);
        closeMedia(call);
        if (this.call === call) {
          this.endCall("接听失败");
        }
      }
    }

    // The page was reloaded (or its connection dropped) during a call it talks in through the
    // softphone: the call goes on, and a new offer brings its audio back (the server keeps the
    // agent in the call for reconnect_grace_s).
    async resume(call) {
      try {
        await this.startMedia(call);
      } catch (err) {
        this.error(`通话声音恢复失败：${err.message}`);
        closeMedia(call);
      }
    }

    // The microphone, a peer connection and the offer for `call`; the server's answer in.
    async startMedia(call) {
      call.mic = await navigator.mediaDevices.getUserMedia({
        audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true},
      });
      const pc = new RTCPeerConnection({
        iceServers: (this.config.ice_servers || []).map((urls) => ({urls})),
      });
      call.pc = pc;
      const track = call.mic.getAudioTracks()[0];
      const transceiver = pc.addTransceiver(track, {direction: "sendrecv", streams: [call.mic]});
      const caps = RTCRtpReceiver.getCapabilities("audio");
      const wanted = (this.config.codecs || []).flatMap((name) =>
        caps.codecs.filter((c) => c.mimeType.toLowerCase() === `audio/${name.toLowerCase()}`),
      );
      if (wanted.length && transceiver.setCodecPreferences) {
        transceiver.setCodecPreferences(wanted);
      }
      pc.addEventListener("track", (ev) => {
        call.remote = ev.streams[0] || new MediaStream([ev.track]);
        this.audio.srcObject = call.remote;
        this.audio.play().catch(() => this.error("浏览器阻止了声音播放，请点击页面任意处"));
        this.startMeters(call);
      });
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "failed") {
          this.error("媒体连接失败（请检查网络或防火墙的 UDP 端口）");
        }
        this.render();
      });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const reply = await this.request("answer", {call: call.id, sdp: pc.localDescription.sdp});
      if (this.call !== call || call.state === "ended") {
        closeMedia(call);
        return;
      }
      await pc.setRemoteDescription({type: "answer", sdp: reply.sdp});
    }

    // -- the conversation ------------------------------------------------------------------
    callState(msg) {
      let call = this.call;
      let resumed = false;
      if (!call || call.id !== msg.call) {
        if (msg.ended) {
          return;
        }
        // a desk phone answered, or this page was reloaded during a call: through the
        // softphone, the call's audio comes back here
        const mine = (msg.parties || []).find((p) => p.id === msg.me);
        const softphone = Boolean(mine && mine.softphone && this.config && this.config.webrtc);
        this.ringing({call: msg.call, caller: msg.caller, softphone});
        call = this.call;
        if (!call || call.id !== msg.call) {
          return;  // busy with another call (one at a time)
        }
        resumed = softphone && mine.state === "up";
      }
      if (msg.ended) {
        this.endCall("通话已结束");
        return;
      }
      call.held = Boolean(msg.held);
      call.parties = msg.parties || [];
      call.me = msg.me;
      const me = call.parties.find((p) => p.id === msg.me);
      if (me && me.state === "up" && call.state !== "up") {
        call.state = "up";
        call.upSince = Date.now();
        this.refreshTargets();
      }
      this.render();
      if (resumed) {
        this.resume(call);
      }
    }

    endCall(why) {
      const call = this.call;
      if (!call) {
        return;
      }
      call.state = "ended";
      closeMedia(call);
      this.stopMeters();
      this.audio.srcObject = null;
      $("call-status").textContent = why;
      this.call = null;
      this.render();
    }

    hangup() {
      if (!this.call) {
        return;
      }
      if (this.call.state === "ringing") {
        this.act("decline", {call: this.call.id});
        return;
      }
      this.control("hangup");
    }

    setMuted(muted) {
      const call = this.call;
      if (!call || !call.mic) {
        return;
      }
      call.muted = muted;
      for (const track of call.mic.getAudioTracks()) {
        track.enabled = !muted;  // the browser sends silence: the caller hears nothing
      }
      this.render();
    }

    async refreshTargets() {
      const res = await this.act("targets");
      const select = $("target");
      const chosen = select.value;
      select.replaceChildren();
      for (const a of (res && res.agents) || []) {
        const option = document.createElement("option");
        option.value = a.username;
        option.textContent = `${a.username}（${ROLE_LABELS[a.role] || a.role}，${a.state_label}）`;
        option.selected = a.username === chosen;  // a refresh keeps the agent's choice
        select.append(option);
      }
    }

    fillDepartments(departments) {
      const select = $("department");
      select.replaceChildren();
      for (const d of departments) {
        const option = document.createElement("option");
        option.value = d.code;
        option.textContent = d.name;
        select.append(option);
      }
      show($("conference"), departments.length > 0);
    }

    // -- drawing ---------------------------------------------------------------------------
    render() {
      const call = this.call;
      const ringing = Boolean(call && (call.state === "ringing" || call.state === "answering"));
      show($("ring"), ringing);
      if (call && call.state === "answering") {
        button("answer").disabled = true;
        $("ring-title").textContent = "正在接通…";
      } else if (button("answer")) {
        button("answer").disabled = false;
      }
      const talking = Boolean(call && call.state === "up");
      show($("call"), talking || Boolean($("call-status").textContent && !ringing && !call));
      if (!talking) {
        for (const el of root.querySelectorAll("[data-sp='call'] button, [data-sp='call'] select")) {
          el.disabled = true;
        }
        show($("parties"), false);
        return;
      }
      for (const el of root.querySelectorAll("[data-sp='call'] button, [data-sp='call'] select")) {
        el.disabled = false;
      }
      show($("parties"), true);
      $("call-caller").textContent = call.caller;
      $("call-path").textContent = call.steps.join(" → ") || "—";
      $("call-wait").textContent = clock(call.waited);
      const me = call.parties.find((p) => p.id === call.me);
      const primary = Boolean(me && me.role === "primary");
      const consult = call.parties.find((p) => p.role === "consult");
      let status = call.held ? "来电方保持中（播放等待音乐）" : "通话中";
      if (consult) {
        status = primary
          ? `咨询 ${consult.label}：${PARTY_STATES[consult.state] || consult.state}`
          : "咨询通话（来电方保持中）";
      }
      if (call.muted) {
        status += " · 已静音";
      }
      if (call.pc && call.pc.connectionState && call.pc.connectionState !== "connected") {
        status += ` · 媒体${call.pc.connectionState}`;
      }
      $("call-status").textContent = status;
      show(button("hold"), primary && !call.held);
      show(button("unhold"), primary && call.held && !consult);
      show(button("mute"), Boolean(call.mic) && !call.muted);
      show(button("unmute"), Boolean(call.mic) && call.muted);
      show($("transfer"), primary);
      show(button("blind"), !consult);
      show(button("attended"), !consult);
      show(button("complete"), Boolean(consult) && consult.state === "up");
      show(button("cancel"), Boolean(consult));
      const phone = call.parties.find((p) => p.kind === "phone");
      button("conference").disabled = Boolean(phone);
      const list = $("parties");
      list.replaceChildren();
      const caller = document.createElement("li");
      caller.textContent = `来电方 ${call.caller}${call.held ? "（保持中）" : ""}`;
      list.append(caller);
      for (const p of call.parties) {
        const li = document.createElement("li");
        const who = p.kind === "phone" ? `单位 ${p.label}` : `坐席 ${p.label}`;
        li.textContent = `${who}${p.id === call.me ? "（本人）" : ""}：${PARTY_STATES[p.state] || p.state}`;
        li.dataset.party = p.id;
        if (p.kind === "phone") {
          const drop = document.createElement("button");
          drop.type = "button";
          drop.textContent = "移出";
          drop.dataset.spDrop = p.id;
          li.append(" ", drop);
        }
        list.append(li);
      }
    }

    tick() {
      const state = this.agent ? this.agent.state : "offline";
      let text = "";
      if (state === "wrapup" && this.wrapupEnds) {
        text = `剩余 ${clock((this.wrapupEnds - Date.now()) / 1000)}`;
      } else if (state !== "offline") {
        text = clock((Date.now() - this.agentSince) / 1000);
      }
      $("state-timer").textContent = text;
      const call = this.call;
      if (call && (call.state === "ringing" || call.state === "answering")) {
        // a queue caller is still waiting; a transfer shows how long they queued
        const waiting = call.transfer ? 0 : (Date.now() - call.since) / 1000;
        $("ring-wait").textContent = clock(call.waited + waiting);
      }
      if (call && call.state === "up" && call.upSince) {
        $("call-timer").textContent = clock((Date.now() - call.upSince) / 1000);
      }
    }

    error(text) {
      const el = $("error");
      el.textContent = text;
      show(el, true);
      clearTimeout(this.errorTimer);
      this.errorTimer = setTimeout(() => show(el, false), 8000);
    }

    // -- level meters: the browser's own audio levels (getStats), no audio processing of ours --
    startMeters(call) {
      this.stopMeters();
      const timer = setInterval(async () => {
        if (!call.pc) {
          return;
        }
        let mic = 0;
        let speaker = 0;
        (await call.pc.getStats()).forEach((s) => {
          if (s.type === "media-source" && s.kind === "audio") {
            mic = s.audioLevel || 0;
          } else if (s.type === "inbound-rtp" && s.kind === "audio") {
            speaker = s.audioLevel || 0;
          }
        });
        $("mic-level").value = call.muted ? 0 : Math.min(1, mic * 2);
        $("speaker-level").value = Math.min(1, speaker * 2);
      }, 500);
      this.meters = {timer};
    }

    stopMeters() {
      if (this.meters) {
        clearInterval(this.meters.timer);
        this.meters = null;
      }
    }

    // -- for tests and the bench: what this page receives ------------------------------------
    remoteStream() {
      return this.call ? this.call.remote : null;
    }

    async mediaStats() {
      const pc = this.call && this.call.pc;
      if (!pc) {
        return null;
      }
      const out = {};
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          out.inbound = s;
        } else if (s.type === "outbound-rtp" && s.kind === "audio") {
          out.outbound = s;
        } else if (s.type === "candidate-pair" && s.nominated) {
          out.pair = s;
        }
      });
      return JSON.parse(JSON.stringify(out));
    }
  }

  function gathered(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") {
        resolve();
        return;
      }
      const done = () => {
        if (pc.iceGatheringState === "complete") {
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, ICE_WAIT_MS);  // answer with what was gathered (no trickle ICE)
    });
  }

  function closeMedia(call) {
    if (call.pc) {
      call.pc.close();
      call.pc = null;
    }
    if (call.mic) {
      for (const track of call.mic.getTracks()) {
        track.stop();
      }
      call.mic = null;
    }
  }

  const phone = new Softphone();
  window.hotlineSoftphone = phone;

  root.addEventListener("click", (ev) => {
    const target = ev.target.closest("button");
    if (!target || target.disabled) {
      return;
    }
    if (target.dataset.spDigit) {
      phone.control("dtmf", {digits: target.dataset.spDigit});
      return;
    }
    if (target.dataset.spDrop) {
      phone.control("drop", {party: target.dataset.spDrop});
      return;
    }
    const action = target.dataset.spAction;
    const reason = $("reason").value;
    const actions = {
      login: () => phone.act("login"),
      "login-desk": () => phone.act("login", {uri: $("desk-uri").value.trim()}),
      logout: () => phone.act("logout"),
      available: () => phone.act("state", {state: "available", reason: ""}),
      paused: () => phone.act("state", {state: "paused", reason}),
      wrapup: () => phone.act("state", {state: "wrapup", reason: ""}),
      answer: () => phone.answer(),
      decline: () => phone.hangup(),
      hangup: () => phone.hangup(),
      hold: () => phone.control("hold"),
      unhold: () => phone.control("unhold"),
      mute: () => phone.setMuted(true),
      unmute: () => phone.setMuted(false),
      "refresh-targets": () => phone.refreshTargets(),
      blind: () => phone.control("transfer", {target: $("target").value, mode: "blind"}),
      attended: () => phone.control("transfer", {target: $("target").value, mode: "attended"}),
      complete: () => phone.control("complete"),
      cancel: () => phone.control("cancel"),
      conference: () => phone.control("conference", {department: $("department").value}),
    };
    if (actions[action]) {
      actions[action]();
    }
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "F8") {
      ev.preventDefault();
      phone.answer();
    } else if (ev.key === "F9") {
      ev.preventDefault();
      phone.hangup();
    }
  });

  setInterval(() => phone.tick(), 1000);
  phone.connect();
})();
