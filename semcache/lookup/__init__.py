"""What decides a hit, besides the vector search: the partition key (``partition``),
text normalisation for the exact path (``normalize``), categories and their policies
(``categories``, ``policies``), thresholds learnt from feedback (``adaptive``) and the
conversation context (``context``)."""
