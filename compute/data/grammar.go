package data

// The sentence grammar of the default corpus: made-up content words joined
// by a few English function words, e.g. "The mossy blorn finds a kreel near
// the vrill.". Every table here is part of the source's definition: changing
// any of them changes the corpus and its entropy.

var (
	subjDetsCap = []weighted{{"The", 12}, {"A", 6}, {"Every", 3}, {"No", 2}, {"Some", 3}}
	subjDets    = []weighted{{"the", 12}, {"a", 6}, {"every", 3}, {"no", 2}, {"some", 3}}
	objDets     = []weighted{{"the", 5}, {"a", 3}, {"every", 1}, {"no", 1}, {"her", 1}, {"his", 1}}
	prepDets    = []weighted{{"the", 5}, {"a", 3}, {"every", 1}, {"no", 1}}
	conjWords   = []weighted{{"and", 4}, {"but", 2}, {"so", 1}, {"while", 1}}

	names = []string{"Zorba", "Quilla", "Brannoch", "Ivet", "Mordu", "Tesk", "Olwen", "Ptara"}
	nouns = []string{"blorn", "tavish", "quom", "fendle", "grisk", "mavel", "plonk", "zarth", "wimble", "drosk",
		"snorp", "vrill", "gantle", "hobbin", "kreel", "lurm", "nabble", "oskin", "pruff", "yarrow"}
	adjectives = []string{"brisk", "dim", "glassy", "hollow", "mossy", "pale", "quiet", "rusty", "silver", "tall", "wary", "velvet"}
	// verbs: the first numTransitive take an object.
	verbs = []string{"finds", "grabs", "mends", "chases", "feeds", "hides", "lifts", "paints", "sees", "trades", "warns", "weighs",
		"sleeps", "wanders", "sings", "waits", "glows", "shivers", "laughs", "rests"}
	adverbs      = []string{"slowly", "often", "again", "gladly", "softly", "twice", "rarely", "boldly"}
	prepositions = []string{"near", "under", "beside", "behind", "past", "with"}

	// zipf gives the weight of the word ranked r-th in a context: a few
	// words are likely, most are rare, so the chain has structure to learn.
	zipf = []uint64{12, 9, 7, 6, 5, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1}

	// Weights of the ways a clause can go on after its last word.
	endWeight, modWeight, commaWeight uint64 = 5, 3, 2
)

const (
	numTransitive = 12
	adjWeight     = 3 // weight of each adjective against the nouns' zipf weights after a determiner
	advWeight     = 2
	prepWeight    = 3
)

type weighted struct {
	word   string
	weight uint64
}

// slot is a position in the sentence template.
type slot uint8

const (
	slotStart   slot = iota // capitalised subject determiner or name
	slotSubj2               // subject after a conjunction
	slotSubjAdj             // after a subject determiner: adjective or noun
	slotSubjN               // after an adjective: noun (ctx = adjective)
	slotVerb                // ctx = subject noun, or len(nouns)+name
	slotObjDet              // ctx = transitive verb
	slotObjN                // ctx = transitive verb
	slotMod                 // after a clause: adverb or prepositional phrase
	slotPrepDet             // ctx = preposition
	slotPrepN               // ctx = preposition
	slotConj                // after ", "
)

// gkey is a state of the sentence automaton. It holds no count of clauses
// so far: the state is always determined by the last few words, which a
// model with a short context can see.
type gkey struct {
	slot slot
	ctx  uint8
}

// rank permutes a context's choices: word j gets zipf weight
// zipf[rank(j, ctx, salt)], a different assignment for each context, so the
// next word depends on the previous content word.
func rankWeight(j, n, ctx, salt int) uint64 {
	return zipf[(3*j+7*ctx+salt)%n]
}

// grammarArcs lists the arcs of a sentence state.
func grammarArcs(k gkey) []arcSpec[gkey] {
	var out []arcSpec[gkey]
	to := func(s slot, ctx int) *gkey { return &gkey{slot: s, ctx: uint8(ctx)} }
	add := func(label string, w uint64, next *gkey) {
		out = append(out, arcSpec[gkey]{label: label, weight: w, next: next})
	}
	// clauseEnd adds the ways a clause-final word w (weight wt) can be
	// followed: end of sentence, a modifier, or a comma and conjunction.
	clauseEnd := func(w string, wt uint64, allowMod bool) {
		add(w+".\n", wt*endWeight, nil)
		if allowMod {
			add(w+" ", wt*modWeight, to(slotMod, 0))
		}
		add(w+", ", wt*commaWeight, to(slotConj, 0))
	}
	switch k.slot {
	case slotStart, slotSubj2:
		dets := subjDetsCap
		if k.slot == slotSubj2 {
			dets = subjDets
		}
		for _, d := range dets {
			add(d.word+" ", d.weight, to(slotSubjAdj, 0))
		}
		for i, n := range names {
			add(n+" ", 1, to(slotVerb, len(nouns)+i))
		}
	case slotSubjAdj:
		for i, a := range adjectives {
			add(a+" ", adjWeight, to(slotSubjN, i))
		}
		for j, n := range nouns {
			add(n+" ", zipf[j], to(slotVerb, j))
		}
	case slotSubjN:
		for j, n := range nouns {
			add(n+" ", rankWeight(j, len(nouns), int(k.ctx), 0), to(slotVerb, j))
		}
	case slotVerb:
		for j, v := range verbs {
			w := rankWeight(j, len(verbs), int(k.ctx), 0)
			if j < numTransitive {
				add(v+" ", w, to(slotObjDet, j))
			} else {
				clauseEnd(v, w, true)
			}
		}
	case slotObjDet:
		for _, d := range objDets {
			add(d.word+" ", d.weight, to(slotObjN, int(k.ctx)))
		}
	case slotObjN:
		for j, n := range nouns {
			clauseEnd(n, rankWeight(j, len(nouns), int(k.ctx), 1), true)
		}
	case slotMod:
		for _, a := range adverbs {
			clauseEnd(a, advWeight, false)
		}
		for i, p := range prepositions {
			add(p+" ", prepWeight, to(slotPrepDet, i))
		}
	case slotPrepDet:
		for _, d := range prepDets {
			add(d.word+" ", d.weight, to(slotPrepN, int(k.ctx)))
		}
	case slotPrepN:
		for j, n := range nouns {
			clauseEnd(n, rankWeight(j, len(nouns), int(k.ctx), 2), false)
		}
	case slotConj:
		for _, c := range conjWords {
			add(c.word+" ", c.weight, to(slotSubj2, 0))
		}
	}
	return out
}
