// Command gateway is the OCVR WebSocket gateway (under construction).
package main

func main() {}
