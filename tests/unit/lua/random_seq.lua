-- Returns the first draws of math.random after the host's seeding.
return {
  math.random(), math.random(100), math.random(-5, 5), math.random(1, 2^40),
}
