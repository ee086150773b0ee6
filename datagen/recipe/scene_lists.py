"""The scene lists the prompts stage draws from. `stages.prompts.scene_lists: large` (the
default): a theme, a background and a condition (light, time of day, weather, season) per
sample, the condition appended to the background ("a fishing pier on a foggy day").

Written by hand for SIGMA-SET27K's "diverse backgrounds": concrete, safe, no proper names or
brands, all lower case. The order is fixed (a draw is an index into these tuples): append new
entries at the end, or a run's seeds draw other scenes; a run keeps the lists it was made
with in its run.yaml either way.

318 backgrounds x 270 themes x 30 conditions = 2,575,800 combinations: 41,000 draws (the
paper-scale run) repeat an earlier draw's combination ~0.8% of the time, and an earlier draw's
(theme, background) pair ~20% of the time (datagen.recipe.diversity.expected_repeat_share).
The small lists (`scene_lists: small`: 15 x 15, no conditions) repeat ~99% of the time.
"""

from __future__ import annotations

# `scene_lists: small`: the 15 x 15 lists every run used before paper-scale ones (no conditions).
SMALL_THEMES: tuple[str, ...] = (
    "a cluttered workshop", "a picnic", "a child's bedroom", "a kitchen counter", "a street market",
    "a camping trip", "an artist's desk", "a garden party", "a science classroom", "a beach day",
    "a music studio", "a cafe table", "a hiking trail", "a toy shop window", "a home office",
)
SMALL_BACKGROUNDS: tuple[str, ...] = (
    "a sunlit wooden floor", "a grassy park", "a marble countertop", "a sandy beach", "a city sidewalk",
    "a snowy field", "a cozy living room", "a plain studio backdrop", "a forest clearing",
    "a tiled kitchen", "a rooftop terrace", "a library", "a garage", "a lakeside dock", "a desert road",
)

# Where a scene takes place: rooms, workplaces, streets, farms, wild places, surfaces and a few
# storybook settings. No time of day here: CONDITIONS adds it.
BACKGROUNDS: tuple[str, ...] = (
    "a sunlit wooden floor", "a cozy living room", "a tiled kitchen", "a marble countertop",
    "a farmhouse kitchen table", "a breakfast nook by a window", "a cluttered attic",
    "a basement laundry room", "a walk-in closet", "a bathroom vanity", "a playroom rug",
    "a teenager's bedroom", "a sunroom full of plants", "a narrow hallway with a runner rug",
    "an entryway with a coat rack", "a wooden staircase landing", "a window seat with cushions",
    "a fireplace hearth", "a dining table set for a family meal", "a pantry with stocked shelves",
    "a home workshop bench", "a garage", "a backyard patio", "a front porch",
    "a balcony with potted plants", "a garden shed", "a greenhouse bench", "a vegetable garden bed",
    "a lawn with a picnic blanket", "a rooftop terrace", "a plain studio backdrop",
    "a seamless white backdrop", "a soft grey paper backdrop", "a dark slate tabletop",
    "a rustic plank table", "a polished concrete floor", "a linen tablecloth", "a checkered picnic blanket",
    "a glass coffee table", "a woven straw mat", "a terrazzo floor", "a black stage floor",
    "a felt-covered card table", "a butcher block counter", "a painted brick wall", "a mossy stone wall",
    "a colourful patterned rug", "a library", "a reading room with tall windows",
    "a school hallway with lockers", "a science lab bench", "a school gymnasium", "a museum gallery",
    "an art studio with easels", "a pottery studio", "a dance studio with mirrors", "a recording booth",
    "a theatre stage", "a cinema lobby", "a bowling alley", "an indoor swimming pool deck", "a hotel lobby",
    "a hotel room", "a hospital waiting room", "a hair salon", "a laundromat", "a post office counter",
    "a bank lobby", "an office cubicle", "an open-plan office", "a conference room", "an office break room",
    "a coworking space", "a server room", "a warehouse aisle", "a loading dock", "a factory floor",
    "a carpenter's workshop", "a blacksmith's forge", "a bicycle repair shop", "a car repair garage",
    "a hardware store aisle", "a toy store aisle", "a bookshop", "an antique shop", "a thrift store",
    "a florist's shop", "a bakery counter", "a deli counter", "a cheese shop",
    "a supermarket produce aisle", "a corner grocery", "a pharmacy counter", "a cafe table",
    "a diner booth", "a busy restaurant kitchen", "a pizzeria with a wood-fired oven",
    "a noodle bar counter", "a tea house", "a cellar with wooden barrels", "a food court",
    "a shopping mall atrium", "an airport departure lounge", "a train station platform", "a subway car",
    "a city bus interior", "a ferry deck", "a sailboat deck", "an airplane cabin", "a camper van interior",
    "a log cabin interior", "a mountain hut", "a community hall", "a gym with free weights",
    "a climbing gym", "an ice rink", "a roller rink", "an arcade", "a music shop", "a tailor's workroom",
    "a watchmaker's bench", "a photo studio with softboxes", "a television studio", "a newsroom",
    "a classroom with a chalkboard", "a kindergarten classroom", "a university lecture hall",
    "a dormitory room", "an observatory dome", "an aquarium tunnel", "a botanical glasshouse",
    "a butterfly house", "an indoor market hall", "a city sidewalk", "a street market",
    "a cobblestone street", "a narrow alley with hanging laundry", "a town square with a fountain",
    "a bus stop", "a city park bench", "a playground", "a skate park", "a basketball court",
    "a tennis court", "a football pitch", "a baseball diamond", "a running track", "a parking lot",
    "a petrol station forecourt", "a car wash", "a construction site", "a rooftop garden", "a fire escape",
    "a canal towpath", "a riverside promenade", "a pedestrian bridge", "a harbour quay", "a fishing pier",
    "a marina", "a wooden boardwalk", "a seaside promenade", "an amusement park", "a fairground",
    "a flea market", "a farmers' market", "an outdoor cafe terrace", "a food truck lot",
    "a wall covered in murals", "a courtyard with potted lemon trees", "a cloister garden",
    "a suburban driveway", "a suburban backyard", "a quiet cul-de-sac", "a school playground",
    "a petting zoo", "an open-air theatre", "a bandstand in a park", "a train yard", "a tram stop",
    "a rooftop helipad", "a stadium stand", "a drive-in cinema lot", "a farmyard", "a barn interior",
    "a hayloft", "a stable", "a chicken coop", "an orchard", "a vineyard", "a wheat field",
    "a sunflower field", "a lavender field", "a rice terrace", "a tea plantation", "a pumpkin patch",
    "a country lane", "a dirt road between fields", "a village well", "a windmill", "a cottage garden",
    "a hedge maze", "a pasture with a wooden fence", "a duck pond", "a level crossing in the countryside",
    "a grassy park", "a forest clearing", "a pine forest floor", "a birch grove", "a bamboo grove",
    "a rainforest understory", "a mossy riverbank", "a mountain stream", "a waterfall pool",
    "a lakeside dock", "a pebbly lake shore", "a sandy beach", "a rocky shoreline", "a tide pool",
    "a sea cave", "a coral reef", "a sand dune", "a desert road", "a desert oasis", "a red rock canyon",
    "a salt flat", "a dry riverbed", "a savanna", "a prairie with tall grass", "an alpine meadow",
    "a mountain summit", "a mountain pass", "a scree slope", "the edge of a glacier", "a snowy field",
    "a frozen lake", "a snow-covered pine forest", "an icy tundra", "a black sand beach", "a lava field",
    "a marsh with reeds", "a mangrove shore", "a swamp boardwalk", "a river delta", "a cliff top",
    "a cave entrance", "a terraced hillside", "a wildflower meadow", "a fern gully",
    "a fallen log covered in moss", "a riverside campsite", "a hiking trail", "a scenic lookout point",
    "a canyon trail", "a tropical island beach", "a palm grove", "a windswept moorland",
    "a heather-covered hill", "a limestone pavement", "a gravel garden path", "a castle courtyard",
    "stone ruins overgrown with ivy", "a lighthouse gallery", "a treehouse", "a hot air balloon basket",
    "a carousel", "a circus tent", "a puppet theatre", "a dollhouse room", "a space station module",
    "a moon base", "a submarine control room", "a pirate ship deck", "a medieval market square",
    "a wizard's study", "an enchanted forest", "a landscape of clouds", "an underwater shipwreck",
    "a cratered lunar landscape", "a red rocky alien plain", "a snow globe village",
    "a giant's kitchen table", "a cardboard box fort", "a blanket fort", "a tabletop diorama",
    "a model railway layout", "a rooftop overlooking a city skyline", "a bridge over a canal",
    "a stone bridge over a stream", "a raked gravel garden", "a koi pond", "a plant nursery",
    "a tiled courtyard with a fountain", "a ski slope", "a ski lodge lounge", "a hot spring pool",
    "a beach hut", "a lifeguard tower", "a campsite with a tent", "a picnic area with wooden tables",
    "a boathouse", "a fishing boat deck", "a rowing boat on a calm lake", "a kayak launch",
    "a garden pergola", "a vine-covered archway", "a rose garden", "a topiary garden",
    "a park with autumn leaves", "a picket-fenced front yard", "a village bakery window", "a bicycle lane",
    "a railway bridge", "a highway rest stop", "a mountain cabin porch", "a lakeside cabin deck",
    "a sandy riverbank", "a rocky mountain lake", "a bird hide by a wetland",
)

# What the scene is about: occasions, hobbies, trades, collections, outings (the first 15 are
# SMALL_THEMES).
THEMES: tuple[str, ...] = (
    "a cluttered workshop", "a picnic", "a child's bedroom", "a kitchen counter", "a street market",
    "a camping trip", "an artist's desk", "a garden party", "a science classroom", "a beach day",
    "a music studio", "a cafe table", "a hiking trail", "a toy shop window", "a home office",
    "a birthday party", "a bake sale", "a yard sale", "spring cleaning", "moving day", "a packed suitcase",
    "a tea party", "a board game session", "breakfast in bed", "a weekend brunch", "a backyard barbecue",
    "a fishing trip", "a road trip", "a ski holiday", "a sandcastle contest", "a kite festival",
    "a snowball fight", "building a snowman", "pumpkin carving", "a harvest festival", "a flower show",
    "a farmers' market haul", "a pet grooming session", "a dog's favourite toys", "a cat's playtime",
    "a home aquarium hobby", "a birdwatching outing", "a school science fair", "a robotics club",
    "a chess tournament", "a jigsaw puzzle session", "a knitting circle", "a sewing project",
    "a quilting bee", "a pottery class", "a watercolour lesson", "calligraphy practice",
    "a woodworking project", "a model-building hobby", "a bicycle tune-up", "a charity car wash",
    "a gardening session", "repotting houseplants", "a herb garden", "a seed-planting day",
    "a beekeeper's inspection", "feeding the chickens", "a baking day", "a pasta-making class",
    "a dumpling-making lesson", "a cookie decorating session", "jam making", "a community meal",
    "a street food stall", "a coffee tasting", "a tea ceremony", "a lemonade stand", "an ice cream parlour",
    "a sweet shop", "a cheese board", "a fruit stand", "a fishmonger's display", "a bread basket",
    "a packed lunchbox", "back-to-school shopping", "an exam study session", "a library study group",
    "a history project", "a geography lesson", "a maths lesson with blocks", "a chemistry experiment",
    "a physics demonstration", "a nature table", "a fossil hunt", "a rock collection",
    "a seashell collection", "a stamp collection", "a coin collection", "a vintage toy collection",
    "a vinyl record collection", "a comic book collection", "a trading card swap", "a museum visit",
    "an archaeology dig", "a treasure hunt", "a scavenger hunt", "a magic show", "a puppet show",
    "a circus act", "a talent show", "a school play rehearsal", "a costume party", "a masquerade ball",
    "a wedding reception", "a baby shower", "a graduation day", "a retirement party",
    "a housewarming party", "a family reunion", "a holiday dinner", "a lantern festival",
    "a fireworks show", "a parade", "a marching band", "a jazz jam session", "a rock band rehearsal",
    "an orchestra warm-up", "a dance party", "a karaoke session", "a ballet class", "a yoga session",
    "a home workout", "a football match", "a basketball practice", "a tennis lesson", "a swimming lesson",
    "a surfing lesson", "a skateboarding session", "a rock climbing outing", "a cycling race",
    "a marathon water station", "a golf outing", "a bowling outing", "a fencing practice",
    "a martial arts class", "a sailing regatta", "a rowing practice", "a canoe trip",
    "a horse riding lesson", "a dog show", "a country fair", "a safari", "a jungle expedition",
    "a polar expedition", "a desert trek", "a mountaineering base camp", "a space mission",
    "a deep-sea dive", "a pirate adventure", "a knight's quest", "a fairy tale", "a dragon's lair",
    "a spooky costume party", "a detective's investigation", "a spy gadget lab", "a mad scientist's lab",
    "an inventor's workshop", "a robot repair shop", "a clockmaker's bench", "a toymaker's workshop",
    "a violin maker's workshop", "a bookbinding studio", "a printmaking studio", "a photo shoot",
    "a film set", "a news broadcast", "a podcast recording", "a video game tournament", "a hackathon",
    "a startup pitch", "a business meeting", "a trade fair booth", "an auction", "a lost and found box",
    "a parcel delivery round", "a train journey", "a long-haul flight", "a ferry crossing",
    "a hotel check-in", "a camping breakfast", "a caravan holiday", "a cabin weekend", "a fishing village",
    "a lighthouse keeper's day", "farm chores", "sheep shearing", "an apple harvest", "a grape harvest",
    "a winter holiday market", "a snow day", "a rainy commute", "a heatwave", "a power cut", "a sleepover",
    "a pillow fight", "a bedtime story", "a toddler's playtime", "a teddy bears' picnic",
    "a dolls' tea party", "a toy car race", "a model rocket launch", "a paper aeroplane contest",
    "a dinosaur exhibit", "an art exhibition opening", "a sculpture garden", "a street art tour",
    "a poetry reading", "a book club", "a writer's desk", "an architect's drafting table",
    "an engineer's workbench", "a mechanic's toolbox", "an electrician's kit", "redecorating a room",
    "a florist's workbench", "a chef's prep station", "a barista's station", "a juice bar",
    "a street musician", "a tailor's fitting", "a shoe repair counter", "a hat shop",
    "a jeweller's workbench", "a soap-making workshop", "a candle-making workshop",
    "a flower-arranging class", "a minimalist apartment", "a maximalist living room", "a vintage kitchen",
    "a retro diner", "a futuristic kitchen", "a steampunk workshop", "a spa day", "feeding the ducks",
    "a garden pond", "an insect hotel", "a nature walk", "a leaf collection", "a mushroom foraging walk",
    "berry picking", "rock pooling", "whale watching", "a snorkelling trip", "a lifeguard station",
    "a school sports day", "a field trip", "the first day of school", "a homework table",
    "a birthday present unboxing", "gift wrapping", "a craft fair", "a wool shop", "a veterinary check-up",
    "a pet shop", "a reptile keeper's room", "a bird sanctuary", "a wildlife rescue centre",
    "recycling day", "a community clean-up", "a repair cafe", "a seed swap", "a cookbook photo shoot",
    "a product photo shoot", "a still life arrangement", "a sculptor's studio",
)

# Light, time of day, weather and season, appended to the background ("a library at dusk");
# each reads well indoors and out.
CONDITIONS: tuple[str, ...] = (
    "in soft morning light", "in bright midday light", "in warm afternoon light", "at golden hour",
    "at dusk", "at night, lit by warm lamps", "in the cool blue light before dawn", "on an overcast day",
    "on a rainy day", "on a foggy day", "on a windy day", "on a crisp autumn day", "on a hot summer day",
    "on a cold winter day", "on a mild spring day", "after a fresh snowfall", "in dappled shade",
    "in soft, diffuse light", "in hard, direct light", "with long, low shadows", "with gentle backlight",
    "with strong side light", "in bright, airy light", "in moody, low light", "in warm lamplight",
    "in cool, even light", "in hazy light", "in clear, crisp light", "in golden late-summer light",
    "in pale winter light",
)

SCENE_LISTS: dict[str, dict[str, tuple[str, ...]]] = {
    "large": {"themes": THEMES, "backgrounds": BACKGROUNDS, "conditions": CONDITIONS},
    "small": {"themes": SMALL_THEMES, "backgrounds": SMALL_BACKGROUNDS, "conditions": ()},
}


def fill(data: object) -> object:
    """PromptsConfig's raw settings with the themes, backgrounds and conditions they leave out
    taken from the lists `scene_lists` names (large by default). Conditions qualify the named
    lists' own backgrounds: a config that lists its own backgrounds gets no conditions unless
    it lists those too (and a run.yaml made before conditions draws the scenes it drew). The
    dumped config (run.yaml) holds the lists themselves, so a run keeps its scenes."""
    if not isinstance(data, dict):
        return data
    lists = SCENE_LISTS.get(data.get("scene_lists", "large"))
    if lists is None:
        return data  # the config's Literal reports the unknown name
    filled = {"themes": list(lists["themes"]), "backgrounds": list(lists["backgrounds"])}
    filled["conditions"] = list(lists["conditions"]) if "backgrounds" not in data else []
    return {**filled, **data}
