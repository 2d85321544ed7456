"""SIP test harness: RTP pcap generation and SIPp runners for the telephony tests."""
