package main

// commands is the command table. To add a command, add an entry here and
// write its setup function: it declares the flags on fs and returns the
// function that validates them (usageErrorf → exit 2, before any NATS
// call), then does the work through a (a.conn, a.publisher, a.sessions,
// a.tickets, a.directory) and reports each result with a.emit (text, or
// JSON with --json). Other errors exit with the code exitCode gives them
// (output.go): 3 unreachable, 4 not found, 5 refused, else 1.
func commands() []command {
	return []command{
		{path: "session create", synopsis: "--user ID --name NAME [--ttl 24h]",
			summary: "create a bearer session; prints the token sess_… on its own line, then the session id",
			help: `The token is printed once and only its hash is stored: hand it to the
client, which sends it as "Authorization: Bearer sess_…" to ticketsvc.
The first line of output is the token alone, so scripts can read it with
"head -n1".`,
			setup: sessionCreate},
		{path: "session revoke", synopsis: "--session SID [--reason R] | --user ID [--except SID] [--reason R]",
			summary: "revoke one session, or every session of a user; their sockets get session_revoked and close (4003)",
			help: `With --session, revokes that session (reason defaults to "revoked").
With --user, revokes every session of the user but --except (reason defaults
to "logout_all"). The session_revoked event is published to ocvr.user.<id>
either way, so the gateways close the affected sockets.`,
			setup: sessionRevoke},
		{path: "session list", synopsis: "--user ID",
			summary: "list a user's live sessions: session id, display name, created, expires (never tokens)",
			setup:   sessionList},
		{path: "channel create", synopsis: "--channel ID",
			summary: "create a channel (idempotent)", setup: channelCreate},
		{path: "channel delete", synopsis: "--channel ID",
			summary: "delete a channel and its memberships; subscribers get unsubscribed {reason: deleted}",
			setup:   channelDelete},
		{path: "channel list", synopsis: "",
			summary: "list every channel id, one per line", setup: channelList},
		{path: "member add", synopsis: "--channel ID --user ID",
			summary: "make a user a member of a channel (idempotent; the channel must exist)",
			setup:   memberCmd(true)},
		{path: "member remove", synopsis: "--channel ID --user ID",
			summary: "remove a membership (idempotent); the user's subscriptions end with reason removed",
			setup:   memberCmd(false)},
		{path: "member list", synopsis: "--channel ID | --user ID",
			summary: "list the members (user ids) of a channel, or the channels of a user",
			setup:   memberList},
		{path: "friend add", synopsis: "--user ID --friend ID",
			summary: "record a friendship, both directions (idempotent)", setup: friendCmd(true)},
		{path: "friend remove", synopsis: "--user ID --friend ID",
			summary: "remove a friendship, both directions (idempotent)", setup: friendCmd(false)},
		{path: "friend list", synopsis: "--user ID",
			summary: "list a user's friends (user ids, ascending)", setup: friendList},
		{path: "publish message-create", synopsis: "--channel ID --author ID --name NAME --content TEXT [--attachments JSON] [--id msg_…] [--msg-id ID | --core]",
			summary: "publish message_create to a channel; prints the message id",
			help: `The message id is generated (msg_…) when --id is absent; created_at is
now in unix seconds (a JSON integer); attachments is --attachments, a JSON
array of objects passed through as they are (default []). The event is
exactly what clients receive:
  {"type":"message_create","data":{"id":"msg_…","channel_id":"ch_abc123","author":{"id":12345,"display_name":"Sender"},"content":"Hello world!","created_at":1703523600,"attachments":[]}}
` + streamHelp,
			setup: publishMessageCreate},
		{path: "publish message-update", synopsis: "--channel ID --id ID --content TEXT [--msg-id ID | --core]",
			summary: "publish message_update (edited_at now, unix seconds) to a channel", help: streamHelp, setup: publishMessageUpdate},
		{path: "publish message-delete", synopsis: "--channel ID --id ID [--msg-id ID | --core]",
			summary: "publish message_delete to a channel", help: streamHelp, setup: publishMessageDelete},
		{path: "publish raw", synopsis: "--channel ID | --user ID | --broadcast [--frame JSON | < frame.json] [--force] [--msg-id ID | --core]",
			summary: "publish a frame of any type, byte for byte (from --frame or standard input), e.g. a new event type such as channel_update",
			help: `Publishes the frame exactly as given (no re-encoding) to one channel, one
user or every connection, with Ocvr-Published-At set; prints what it
published (and, through the event stream, its stream sequence). The frame is
--frame, or standard input when --frame is absent or - (one trailing newline
removed). Any event type goes, including types the gateway does not know:
they are delivered like any other on the subject they are published on.

The frame is first checked as a gateway checks it ('ocvrctl validate', the
gateways' own code); one a gateway would refuse is not published (exit 5,
refused) unless --force publishes it anyway (to watch 'ocvrctl advisories'
report it). Examples:
  ocvrctl publish raw --channel ch_abc123 --frame '{"type":"channel_update","data":{"channel_id":"ch_abc123","name":"General"}}'
  ocvrctl publish raw --user 12345 < notification.json
` + streamHelp + `A broadcast is always a core publish.`,
			setup: publishRaw},
		{path: "validate", synopsis: "--channel ID | --user ID | --broadcast | --subject SUBJECT [--frame JSON | < frame.json | --lines < frames.jsonl]",
			summary: "check frames exactly as the gateways check bus payloads, without NATS; exit 5 if one is refused",
			help: `Runs the gateways' own check (protocol.ValidateEvent; pkg/README.md "What the
gateway checks") on a frame as if published on the subject, and prints
"valid: <type> on <subject>" or "refused on <subject>: <reason>" (--json:
{"valid":…,"type":…,"subject":…,"bytes":…,"reason":…}). The frame is --frame,
or standard input (--frame absent or -); with --lines every non-empty line
of standard input is one frame, each reported on its own line (with its
line number). Exit 0 when every frame is valid, 5 (refused) otherwise.
Needs no NATS. The JSON Schema pkg/protocol/busevent.schema.json states the
same rule for other languages. Examples:
  ocvrctl validate --channel ch_abc123 --frame '{"type":"message_delete","data":{"id":"m1","channel_id":"ch_abc123"}}'
  ocvrctl validate --subject ocvr.in.user.42 --lines --json < events.jsonl`,
			setup: validate},
		{path: "notify", synopsis: "--user ID --type T --title TITLE [--body BODY] [--data JSON] [--id notif_…] [--msg-id ID | --core]",
			summary: "send a notification to every connection of a user; prints the notification id",
			help: `created_at is now in unix seconds (a JSON integer); the notification's own
data is --data, a JSON object (default {}). Example:
  ocvrctl notify --user 12345 --type friend_request --title "New Friend Request" \
    --body "User123 wants to be your friend" --data '{"from_user_id":456}'
` + streamHelp,
			setup: notify},
		{path: "stream info", synopsis: "",
			summary: "show the event stream (continuity): subjects, replicas, window, messages, bytes, first and last event",
			help: `Reads the JetStream stream --stream-name (default OCVR_EVENTS) that stores
channel and user events for the continuity window and republishes them to
the gateways with their position: its configuration, where its replicas
are and whether they are current, and what it holds. Notes what a gateway
of this --subject-prefix would not expect (other subjects, no direct get).`,
			setup: streamInfo},
		{path: "stream ensure", synopsis: "[--window 2m] [--replicas N] [--max-bytes N]",
			summary: "create the event stream, or update it to these settings (idempotent), as a gateway does at start",
			help: `For operators who provision the stream before any gateway runs (backends
publishing through the stream get "the event stream did not answer" until
it exists). Each gateway also applies its own settings at start
(--continuity-window, --stream-replicas, --stream-max-bytes; the newest
wins): give both the same values. An existing stream keeps its replicas
when --replicas is 0, and always keeps its resume-token key. Prints the
settings in place.`,
			setup: streamEnsure},
		setupCommand,
		permissionsCommand,
		{path: "broadcast", synopsis: "--type notification --title TITLE [--body BODY] [--notification-type T] [--data JSON] [--id notif_…]",
			summary: "broadcast a notification to every connection of every gateway; prints its id",
			help: `--type is the frame type; only notification can be broadcast here ('publish
raw --broadcast' sends any other). The notification's own type field is
--notification-type, its data object --data (default {}); created_at is now
in unix seconds.`,
			setup: broadcast},
		{path: "advisories", synopsis: "[--count N]",
			summary: "print every bus payload a gateway refused, and why, as the gateways report it",
			help: `Subscribes to <prefix>.advisory.rejected, where each gateway pod reports
every bus message it refused (bounded per pod; "+N not reported" counts
what a pod left out). A pod receives, and so checks, only the subjects its
clients use: a payload no one is subscribed to is never reported. Prints
one line per advisory:
  <time> <gateway> <subject>: <reason> | <size> bytes: <payload prefix>
The global --json prints each advisory's JSON body instead (subject, reason,
payload, truncated, size, gateway, time, suppressed). Runs until Ctrl-C, until
--count advisories were printed, or for --timeout when given (exit 1 if
--count was not reached by then). "listening on <subject>" goes to stderr
once the subscription is live.`,
			setup: advisories, long: true},
		{path: "ticket mint", synopsis: "--session TOKEN",
			summary: "verify a bearer session and mint a 30 s connect ticket; prints the ticket wst_…",
			help: `Does what POST /v1/auth/ws-ticket does, without the HTTP service: for
testing a gateway by hand (GET /v1/ws?ticket=wst_…). The token is visible
in the process list while ocvrctl runs: use it with development sessions.`,
			setup: ticketMint},
		{path: "presence set", synopsis: "--user ID --text TEXT",
			summary: "set a user's status text; online friends get presence_update; prints a confirmation",
			help: `An empty --text "" clears the status. If the user is online, each friend
receives presence_update {user_id, presence: "online", status_text}.`,
			setup: presenceSet},
		{path: "presence get", synopsis: "--user ID",
			summary: "print a user's presence as JSON: online and status text", setup: presenceGet},
		{path: "connect", synopsis: "--session TOKEN [--subscribe ch_a,ch_b] [--ticket-url URL] [--ws-url URL]",
			summary: "connect to a gateway as a client and print every frame received, one JSON line each",
			help: `Gets a ticket from ticketsvc with the bearer session, opens the socket,
subscribes to the given channels and prints every frame until Ctrl-C or
until the server closes the socket (the close code goes to stderr; exit 1
unless it was a normal close). Heartbeats are sent automatically. Needs
ticketsvc and a gateway, not NATS.`,
			setup: connectCmd, long: true},
	}
}

// streamHelp is the part of the publish commands' help about the event
// stream.
const streamHelp = `
A channel or user event goes through the event stream (continuity): a
JetStream publish to <prefix>.in.channel.<id> or <prefix>.in.user.<id>,
acknowledged once stored; the stream republishes it to <prefix>.channel.<id>
or <prefix>.user.<id> with its position, so clients that reconnect within
the window receive it. --msg-id makes a retry idempotent (one event per id
within the stream's duplicate window). --core publishes straight to the
live subject instead: delivered live, best-effort, without a position.

Targeting (headers; they combine): --except-session SID reaches every
connection but that session's — the sender's ready.session_id, so their
other devices still get their message; --only-sessions SID,SID only those
sessions' connections; --exclude-user ID none of that user's connections.
`
