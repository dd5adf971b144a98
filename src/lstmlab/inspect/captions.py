"""The explanations printed in report.html, written for a reader new to LSTMs.

Kept apart from the page layout so they can be read and edited as prose. Each is HTML.
"""

INTRODUCTION = """
<p>An LSTM (long short-term memory network) reads its input one step at a time &mdash; one
character, word piece or task symbol per step. Each layer has a row of <em>units</em>; think of each unit as one
numbered memory slot. At every step, every unit does four things:</p>
<ul>
<li>the <b>input gate i</b> decides how much new information to write into the slot (0 = nothing, 1 = all);</li>
<li>the <b>cell candidate g</b> is that new information, a number between &minus;1 and 1;</li>
<li>the <b>forget gate f</b> decides how much of the old content to keep (0 = erase, 1 = keep everything);</li>
<li>the <b>output gate o</b> decides how much of the slot the rest of the network gets to see.</li>
</ul>
<p>The slot's content is the <b>cell state c</b> = f &times; (old c) + i &times; g. What the unit passes on is the
<b>hidden state h</b> = o &times; tanh(c). The gates i, f and o are always between 0 (shut) and 1 (open).
This page shows all of these numbers for the text below, so you can see what the network keeps in mind.</p>
"""

EXPLORER = """
<p>Each character (or input symbol) is painted with the value of one unit at the step that reads it. Pick a layer,
a unit and which of its numbers to show. Karpathy, Johnson &amp; Fei-Fei (2015) found units in character
models that light up inside quotes, count the position in a line, or follow brackets &mdash; try the units
listed further down, or browse through the numbers.</p>
"""

COLOUR_LEGEND = """
Colours: for the cell state c, the hidden state h and the candidate g, <span style="background:rgb(255,55,55)">&nbsp;red&nbsp;</span>
is positive, <span style="background:rgb(55,105,255)">&nbsp;blue&nbsp;</span> negative and white zero (c is scaled to the
unit's largest value in this text). For the gates i, f, o, <span style="background:rgb(35,160,55)">&nbsp;green&nbsp;</span>
means open (1) and white shut (0). Point at a character to read the exact number.
"""

INTERPRETABLE = """
<p>For a few simple properties of the text (a <em>feature</em>: are we inside quotes? how many characters since the
line began? is a bracket open?) we compute, for every unit, the correlation between the feature and the unit's
cell state over the text: +1 means the unit goes up and down exactly with the feature, &minus;1 exactly opposite,
0 not related. The units with the largest correlation (either sign) are shown, each painted over the text.
A high correlation on one short text is a hint, not a proof: check it on other texts.</p>
"""

NO_FEATURES = """None of the built-in features (quotes, brackets, position in line or word) changes over this
input, so no unit ranking is shown. Try a text with quotes, brackets and several lines."""

HEATMAPS = """
<p>One picture per layer. Each panel is one of the six numbers; time runs left to right (one column per step)
and each row is one unit (the first 64 units and 400 steps at most). Gates are shown from dark (0, shut) to yellow
(1, open); c, h and g from blue (negative) through white to red (positive). Vertical stripes are moments where
many units change at once (often spaces or line breaks); long horizontal bands are units that hold a value for long.</p>
"""

SATURATION = """
<p>A gate is <b>saturated</b> when it is pushed to an extreme: <em>left-saturated</em> (practically shut, value below 0.1)
or <em>right-saturated</em> (practically fully open, above 0.9). A saturated gate acts like a switch instead of a dimmer.
Following Karpathy, Johnson &amp; Fei-Fei (2015), each dot below is one unit's gate: its x position is the share of
steps the gate was shut, its y position the share of steps it was open. Dots near the origin are gates that are
rarely extreme (they mix old and new information gradually); dots on the dashed diagonal are almost always at one
extreme or the other, switching between them. A forget gate (red) high up on the y axis keeps its cell for a long
time &mdash; a candidate for long memory. A gate stuck in one corner never changes, whatever the input.
The candidate g is not a gate (it lies between &minus;1 and 1); it is counted with the same rule
applied to its range: below &minus;0.8 or above 0.8.</p>
"""

MEMORY = """
<p>If a unit wrote something into its cell at some step, how much of it is still there k steps later? Leaving aside
what gets added in between, the answer is the product of the forget gates of those k steps, f &times; f &times; &hellip;
&times; f. The curve averages this over every start position in the text: the line is the median unit, the band covers
80% of the units. A curve that drops to zero in a few steps means short memory; a curve that stays high means
the unit remembers over long distances. In the table, the <b>half-life</b> is how many steps it takes a unit to lose half
of its cell (from its typical forget gate), and the <b>span</b> is how many steps, on average, the product stays above
one half (counted up to the lag shown in the plot).</p>
"""

SUMMARY = """<p>What was inspected: the model's layers, sizes and where it came from.</p>"""
