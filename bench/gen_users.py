#!/usr/bin/env python3
"""gen_users.py - deterministic randomuser.me-shaped NDJSON for the benchmarks.

    python3 bench/gen_users.py COUNT OUT.ndjson [--seed N]

Each line is one record shaped like a randomuser.me result, trimmed to about
400 bytes (1,000,000 records are about 400 MB):

    {"gender":"female","name":{"title":"Ms","first":"Åse","last":"Nilsen"},
     "location":{"city":"Bergen","state":"Vestland","country":"Norway",
                 "postcode":"NO 3D","coordinates":{"latitude":"-69.8246","longitude":"134.8719"}},
     "email":"ase.nilsen@example.com",
     "login":{"uuid":"7a0eed16-...","username":"yellowpeacock117"},
     "dob":{"date":"1992-03-08T15:13:16.688Z","age":32},"nat":"NO"}

As on randomuser.me, `postcode` is a number for some nationalities and a
string for others, so the column is VARCHAR after inference. The same seed
always gives the same bytes. Standard library only.
"""
import random
import sys
import uuid

COUNTRIES = [
    # (nat, country, postcode is numeric, [(city, state)])
    ("US", "United States", True, [("Billings", "Montana"), ("Austin", "Texas"), ("Fresno", "California"),
                                   ("Toledo", "Ohio"), ("Salem", "Oregon")]),
    ("GB", "United Kingdom", False, [("Leeds", "West Yorkshire"), ("Bristol", "Avon"), ("Derby", "Derbyshire")]),
    ("DE", "Germany", True, [("Bremen", "Bremen"), ("Leipzig", "Sachsen"), ("Köln", "Nordrhein-Westfalen")]),
    ("FR", "France", True, [("Lyon", "Rhône"), ("Nantes", "Loire-Atlantique"), ("Toulouse", "Haute-Garonne")]),
    ("NO", "Norway", False, [("Bergen", "Vestland"), ("Tromsø", "Troms"), ("Ålesund", "Møre og Romsdal")]),
    ("BR", "Brazil", True, [("Curitiba", "Paraná"), ("Recife", "Pernambuco"), ("Manaus", "Amazonas")]),
    ("CA", "Canada", False, [("Halifax", "Nova Scotia"), ("Regina", "Saskatchewan"), ("Victoria", "British Columbia")]),
    ("AU", "Australia", True, [("Hobart", "Tasmania"), ("Darwin", "Northern Territory"), ("Perth", "Western Australia")]),
    ("NL", "Netherlands", False, [("Utrecht", "Utrecht"), ("Zwolle", "Overijssel"), ("Breda", "Noord-Brabant")]),
    ("ES", "Spain", True, [("Sevilla", "Andalucía"), ("Bilbao", "País Vasco"), ("Vigo", "Galicia")]),
    ("FI", "Finland", True, [("Oulu", "Northern Ostrobothnia"), ("Turku", "Southwest Finland")]),
    ("DK", "Denmark", True, [("Aarhus", "Midtjylland"), ("Odense", "Syddanmark")]),
    ("IE", "Ireland", False, [("Galway", "Connacht"), ("Cork", "Munster")]),
    ("MX", "Mexico", True, [("Puebla", "Puebla"), ("Mérida", "Yucatán"), ("Toluca", "Estado de México")]),
    ("IN", "India", True, [("Pune", "Maharashtra"), ("Kochi", "Kerala"), ("Jaipur", "Rajasthan")]),
    ("NZ", "New Zealand", True, [("Nelson", "Tasman"), ("Napier", "Hawke's Bay")]),
    ("CH", "Switzerland", True, [("Bern", "Bern"), ("Lugano", "Ticino")]),
    ("TR", "Turkey", True, [("İzmir", "İzmir"), ("Bursa", "Bursa")]),
    ("UA", "Ukraine", True, [("Lviv", "Lvivska"), ("Odesa", "Odeska")]),
    ("RS", "Serbia", True, [("Niš", "Nišava"), ("Novi Sad", "South Bačka")]),
]
# Uneven weights, as a real user base has.
WEIGHTS = [18, 9, 8, 7, 3, 8, 6, 5, 4, 6, 2, 2, 2, 5, 9, 2, 2, 4, 3, 3]
FIRST_F = ["Jennie", "Åse", "Mia", "Léa", "Sofia", "Emma", "Ana", "Zoe", "Isabella", "Chloé", "Ines", "Hanna",
           "Aylin", "Olivia", "Ella", "Nora", "Priya", "Lucía", "Maja", "Ava"]
FIRST_M = ["Noah", "Lucas", "Jørgen", "Mateo", "Liam", "Ömer", "Arjun", "Hugo", "Elias", "Oliver", "Milan",
           "Jack", "Leon", "Thiago", "Mathis", "Finn", "Ivan", "Samuel", "Luca", "Aaron"]
LAST = ["Nichols", "Nilsen", "Müller", "Martin", "Silva", "García", "Smith", "Jensen", "Virtanen", "Brown",
        "Kaya", "Kumar", "Dubois", "Rossi", "Murphy", "Hernández", "Jovanović", "Wilson", "Bakker", "Moreau"]
WORDS = ["yellow", "blue", "silver", "crazy", "happy", "tiny", "brown", "lazy", "red", "sad"]
ANIMALS = ["peacock", "tiger", "koala", "swan", "rabbit", "bear", "goose", "fish", "dog", "lion"]
ASCII = str.maketrans("ÅåØøÆæÖöÜüÉéèÍíÓóÁáçşİıńćčšžđ", "AaOoAaOoUuEeeIiOoAacsIinccszd")


def json_str(s):
    # Pool values hold no quotes, backslashes or control characters; one
    # apostrophe is fine in JSON.
    return '"' + s + '"'


def generate(count, out, seed=42):
    rnd = random.Random(seed)
    pick_country = rnd.choices
    lines = []
    for i in range(count):
        nat, country, numeric, places = pick_country(COUNTRIES, WEIGHTS)[0]
        city, state = places[rnd.randrange(len(places))]
        female = rnd.random() < 0.5
        first = (FIRST_F if female else FIRST_M)[rnd.randrange(20)]
        last = LAST[rnd.randrange(20)]
        title = ("Ms" if rnd.random() < 0.5 else "Mrs") if female else "Mr"
        pc = rnd.randrange(10000, 99999)
        postcode = str(pc) if numeric else '"%s %d%s"' % (nat, pc % 1000, "ABCDEFGH"[pc % 8])
        age = rnd.randrange(18, 80)
        year = 2025 - age
        u = uuid.UUID(int=rnd.getrandbits(128), version=4)
        email = ("%s.%s@example.com" % (first, last)).lower().translate(ASCII)
        lines.append(
            '{"gender":"%s","name":{"title":"%s","first":"%s","last":"%s"},'
            '"location":{"city":"%s","state":"%s","country":"%s","postcode":%s,'
            '"coordinates":{"latitude":"%.4f","longitude":"%.4f"}},'
            '"email":"%s","login":{"uuid":"%s","username":"%s%s%d"},'
            '"dob":{"date":"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ","age":%d},"nat":"%s"}\n'
            % ("female" if female else "male", title, first, last, city, state, country,
               postcode, rnd.uniform(-90, 90), rnd.uniform(-180, 180),
               email, u, WORDS[i % 10], ANIMALS[(i // 10) % 10], rnd.randrange(100, 999),
               year, rnd.randrange(1, 13), rnd.randrange(1, 29), rnd.randrange(24), rnd.randrange(60),
               rnd.randrange(60), rnd.randrange(1000), age, nat))
        if len(lines) == 10000:
            out.write("".join(lines).encode())
            lines.clear()
    out.write("".join(lines).encode())


def main():
    args = sys.argv[1:]
    seed = 42
    if "--seed" in args:
        k = args.index("--seed")
        seed = int(args[k + 1])
        del args[k:k + 2]
    if len(args) != 2:
        sys.exit("usage: gen_users.py COUNT OUT.ndjson [--seed N]")
    count = int(args[0])
    tmp = args[1] + ".tmp"
    with open(tmp, "wb") as f:
        generate(count, f, seed)
    import os
    os.replace(tmp, args[1])


if __name__ == "__main__":
    main()
