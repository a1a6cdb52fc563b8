"""Video progress: player events in, interventions out (AgentService.WatchVideo, PublishVideoEvents,
StreamInterventions)."""
