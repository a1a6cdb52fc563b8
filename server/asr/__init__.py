"""Speech to text: media in, timed segments out (local faster-whisper or OpenAI-compatible transcription)."""
