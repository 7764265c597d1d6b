"""Named things whose swap changes the answer: languages, libraries, places, drugs, ...

The lists are general vocabulary, in lower case, grouped by class so a reason can
say what kind of thing changed. A word also counts as an entity when it was
capitalised in the middle of the question ("Lisbon"), or carries a digit or a
symbol that words do not ("node.js", "c#", "e04").
"""

from __future__ import annotations

ENTITY_CLASSES: dict[str, frozenset[str]] = {
    "programming language": frozenset(
        """
        python rust java javascript typescript kotlin swift go golang c c++ c# cpp csharp ruby
        php perl scala haskell erlang clojure lua r julia dart matlab fortran cobol
        bash zsh fish powershell sql sh objective-c ocaml f# zig nim crystal groovy vb
        assembly wasm webassembly solidity prolog lisp scheme racket html css sass
        """.split()
    ),
    "library or tool": frozenset(
        """
        django flask fastapi rails laravel spring express react vue angular nextjs next.js
        nuxt ember jquery node node.js nodejs deno bun npm yarn pnpm pip conda poetry numpy pandas
         scipy matplotlib seaborn tensorflow pytorch torch keras sklearn scikit-learn jax
        spark hadoop kafka airflow dbt redis memcached postgres postgresql mysql mariadb sqlite
        mongodb mongo cassandra dynamodb elasticsearch opensearch snowflake bigquery
        docker podman kubernetes k8s helm terraform ansible puppet chef vagrant nginx apache
        git svn mercurial github gitlab bitbucket jenkins vscode vim emacs neovim intellij
        eclipse xcode webpack vite babel eslint prettier jest pytest mocha junit gradle maven
        cargo rustup tokio asyncio celery rabbitmq graphql grpc rest soap openssl ssh curl wget
        excel word powerpoint outlook teams slack zoom jira confluence notion figma photoshop
        wordpress shopify stripe paypal venmo
        """.split()
    ),
    "platform": frozenset(
        """
        linux ubuntu debian fedora centos redhat arch windows macos osx mac ios android ipados
        iphone ipad pixel galaxy kindle chromebook chrome firefox safari edge opera aws azure gcp
        heroku vercel netlify playstation xbox switch nintendo alexa siri
        """.split()
    ),
    "company or product": frozenset(
        """
        apple google microsoft amazon meta facebook instagram whatsapp tiktok twitter netflix
        spotify tesla uber airbnb nvidia intel amd ibm oracle samsung sony toyota ford bmw
        bitcoin ethereum dogecoin solana visa mastercard
        """.split()
    ),
    "place": frozenset(
        """
        france germany spain italy portugal uk england scotland wales ireland usa america canada
        mexico brazil argentina chile peru colombia china japan korea india pakistan russia
        ukraine poland sweden norway finland denmark netherlands belgium austria switzerland
        australia zealand egypt nigeria kenya ethiopia morocco africa asia europe antarctica
        paris london berlin madrid rome amsterdam brussels vienna prague warsaw moscow
        tokyo seoul beijing shanghai delhi mumbai sydney melbourne toronto vancouver chicago
        boston seattle york angeles francisco miami dallas houston denver cairo lagos
        dubai istanbul athens dublin manchester oslo stockholm copenhagen
        helsinki zurich geneva munich barcelona milan venice florence bangkok singapore
        jakarta manila hanoi texas california florida alaska hawaii
        """.split()
    ),
    "drug or supplement": frozenset(
        """
        aspirin ibuprofen acetaminophen paracetamol naproxen diclofenac codeine morphine
        oxycodone tramadol amoxicillin penicillin azithromycin doxycycline ciprofloxacin
         insulin simvastatin lisinopril amlodipine losartan metoprolol
        warfarin heparin clopidogrel omeprazole pantoprazole ranitidine loratadine cetirizine
         melatonin prednisone hydrocortisone sertraline fluoxetine citalopram
        escitalopram bupropion venlafaxine alprazolam diazepam lorazepam zolpidem levothyroxine
        gabapentin pregabalin sildenafil albuterol montelukast caffeine nicotine alcohol
        vitamin zinc iron magnesium calcium potassium folate biotin
        """.split()
    ),
    "condition": frozenset(
        """
        diabetes flu influenza cold covid covid-19 measles mumps shingles chickenpox asthma
        cancer migraine hypertension arthritis anemia pneumonia bronchitis malaria dengue
        hepatitis hiv eczema psoriasis acne insomnia depression anxiety adhd autism
        """.split()
    ),
    "currency": frozenset(
        """
        dollar dollars euro euros pound pounds yen yuan rupee rupees franc peso pesos
        ruble krona rand
        """.split()
    ),
    "language": frozenset(
        """
        english french german spanish italian portuguese dutch flemish russian chinese
        mandarin cantonese japanese korean arabic hindi urdu bengali turkish greek polish
        swedish norwegian danish finnish hebrew swahili
        """.split()
    ),
}

_LOOKUP: dict[str, str] = {}
for _cls, _words in ENTITY_CLASSES.items():
    for _w in _words:
        _LOOKUP.setdefault(_w, _cls)


def entity_class(token: str) -> str | None:
    """The class of a known entity token ("rust" -> "programming language"), else None."""
    return _LOOKUP.get(token)


def looks_like_entity(token: str, original: str, position: int) -> bool:
    """True for known entities, mid-sentence capitalised words and symbol-bearing names."""
    if token in _LOOKUP:
        return True
    if position > 0 and original[:1].isupper() and original.lower() != "i":
        return True
    return any(ch in token for ch in ".#+") and any(ch.isalpha() for ch in token)
