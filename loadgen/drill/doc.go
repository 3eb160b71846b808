// Package drill runs the fault drills of the carpool system and measures
// what they are for: how long the system took to notice a fault, decide,
// move traffic and serve the failed region's riders elsewhere (RTO, by
// phase), how many acknowledged writes the surviving regions lack (RPO),
// whether ride creation held its success objective while it happened, and
// whether ride ids stayed unique and increasing per node.
//
// A Runner works against a running deployment reached by URL (a Target):
// every region's gateway, its fault admin API and its ride API. It starts a
// fixed-rate open-model ride load through the gateways (riders homed in
// every region), waits for a steady baseline, injects the scenario's fault
// through the admin API at a recorded time T0 (or, in external mode, finds
// T0 of a fault injected by Chaos Mesh), polls the gateways' routing status,
// the SLA engine's status and the regions' replication metrics at a fine
// interval, checks every acknowledged ride in the surviving regions, clears
// the fault and waits for recovery. The Result holds every number, the
// checks against the spec's DR objectives, and renders as JSON and
// Markdown.
//
// FaultsClient is the fault admin API's client; `carpoolsla fault` uses it.
package drill
