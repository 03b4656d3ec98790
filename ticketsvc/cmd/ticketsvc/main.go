// Command ticketsvc mints connect tickets (under construction).
package main

func main() {}
