# The same operations through Dalli 3.0 (binary protocol), one line per
# result: run against memcached 1.6 and Rebound by e2e/binclients_test.go.
# Usage: ruby dalli_check.rb ADDR [USER PASSWORD]
require 'dalli'
addr = ARGV[0]
opts = {raw: true, socket_timeout: 3}
opts[:username] = ARGV[1] if ARGV[1]
opts[:password] = ARGV[2] if ARGV[2]
Dalli.logger.level = Logger::ERROR
opts[:namespace] = "dalli"
c = Dalli::Client.new(addr, opts)
def p(name)
  v = begin; yield; rescue => e; e.class.name; end
  puts "#{name} #{v.inspect}"
end
p("set") { !!c.set("k", "v", 0, raw: true) }
p("get") { c.get("k", raw: true) }
p("get miss") { c.get("missing", raw: true) }
p("add exists") { c.add("k", "x", 0, raw: true) }
p("add new") { !!c.add("n", "1", 0, raw: true) }
p("replace") { !!c.replace("k", "r", 0, raw: true) }
p("replace miss") { c.replace("zz", "x", 0, raw: true) }
p("append") { c.append("k", "+a") }
p("prepend") { c.prepend("k", "p+") }
p("get k") { c.get("k", raw: true) }
p("incr") { c.incr("n", 5) }
p("decr") { c.decr("n", 2) }
p("incr default") { c.incr("ctr", 1, 0, 10) }
p("incr again") { c.incr("ctr", 1, 0, 10) }
p("cas") { c.cas("n") { |v| (v.to_i * 2).to_s }.class }
p("get n") { c.get("n", raw: true) }
c.set("a", "1", 0, raw: true); c.set("b", "2", 0, raw: true)
p("get_multi") { c.get_multi("a", "b", "missing").sort }
p("delete") { c.delete("a") }
p("delete again") { c.delete("a") }
p("touch") { c.touch("b", 100) }
p("gat") { c.gat("b", 100) }
p("big") { !!c.set("big", "x" * 500000, 0, raw: true) }
p("big len") { c.get("big", raw: true).length }
p("flush") { c.flush.class }
p("after flush") { c.get("b", raw: true) }
p("alive") { c.alive!.class }
