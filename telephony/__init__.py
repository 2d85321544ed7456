"""SIP telephony intake: IVR, queue, recording, voicemail, WebRTC bridge (later issues)."""
